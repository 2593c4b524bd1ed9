"""Repeat-factor sampling: factors from class frequencies (LVIS formula) and draws at the computed rates."""

import numpy as np
import pytest

from detkit.data.repeat_factors import RepeatFactors, image_labels_of, repeat_factors, repeat_indices


def _labels():
    # 10 images: class 0 in all, class 1 in images 0 and 1 (f=0.2), class 2 in image 2 (f=0.1); image 9 empty
    labs = [np.array([0, 1]), np.array([0, 1, 1]), np.array([0, 2])] + [np.array([0])] * 6 + [np.array([], np.int64)]
    return labs


def test_factors_follow_the_lvis_formula():
    rf = RepeatFactors(_labels(), num_classes=4, threshold=0.4)
    np.testing.assert_allclose(rf.class_frequency, [0.9, 0.2, 0.1, 0.0])
    np.testing.assert_allclose(rf.class_factors, [1.0, np.sqrt(2.0), 2.0, 1.0])  # max(1, sqrt(t / f)); absent: 1
    np.testing.assert_allclose(rf.image_factors, [np.sqrt(2.0), np.sqrt(2.0), 2.0] + [1.0] * 7)
    assert rf.expected_epoch_size() == pytest.approx(2 * np.sqrt(2.0) + 2.0 + 7)
    assert "epoch: 11.8 draws expected from 10 images" in rf.report(["a", "b", "c", "d"])[-1]
    np.testing.assert_allclose(repeat_factors(_labels(), 4, 0.05), np.ones(10))  # every class above t: no repeats


def test_rare_images_are_drawn_at_the_computed_rates():
    factors = repeat_factors(_labels(), 4, 0.4)
    rng = np.random.default_rng(0)
    epochs = 4000
    counts = np.zeros(10)
    for _ in range(epochs):
        counts += np.bincount(repeat_indices(np.arange(10), factors, rng), minlength=10)
    rates = counts / epochs
    np.testing.assert_allclose(rates, factors, atol=0.03)  # sqrt(2) drawn 1 or 2 times, mean 1.414
    assert set(np.unique(repeat_indices(np.arange(10), factors, rng))) == set(range(10))  # nobody left out


def test_labels_are_read_without_images():
    class Detection:
        def __len__(self):
            return 2

        def get_ann_info(self, i):
            return {"labels": np.array([i, i])}

    class Classification:
        labels = np.array([1, 0, 1])

        def __len__(self):
            return 3

    assert [x.tolist() for x in image_labels_of(Detection())] == [[0, 0], [1, 1]]
    assert [x.tolist() for x in image_labels_of(Classification())] == [[1], [0], [1]]
    with pytest.raises(ValueError, match="data.repeat_threshold: list does not say"):
        image_labels_of([1, 2])
    with pytest.raises(ValueError, match="must be > 0"):
        RepeatFactors(_labels(), 4, 0.0)
