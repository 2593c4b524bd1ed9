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


def test_sampler_draws_rare_images_at_the_computed_rates():
    """GroupedBatchSampler(repeat_factors=...): an epoch holds each image about r_i times; same length every epoch."""
    from detkit.data.samplers import GroupedBatchSampler

    factors = repeat_factors(_labels(), 4, 0.4)  # expected 11.83 draws per epoch
    sampler = GroupedBatchSampler([1.0] * 10, batch_size=2, seed=0, num_replicas=2, repeat_factors=factors)
    assert len(sampler) == 3  # ceil(11.83 / 4) global batches
    counts = np.zeros(10)
    for epoch in range(2000):
        batches = sampler.global_batches(epoch)
        assert batches.shape == (3, 4)
        counts += np.bincount(batches.ravel(), minlength=10)
    rates = counts / counts.sum() * factors.sum()  # per-epoch draws, rescaled from the padded 12 to 11.83
    np.testing.assert_allclose(rates, factors, rtol=0.05)
    plain = GroupedBatchSampler([1.0] * 10, batch_size=2, seed=0)
    assert len(plain) == 5 and sorted(np.concatenate(plain.epoch_batches(0))[:10].tolist()) == list(range(10))
    with pytest.raises(ValueError, match="3 repeat factors for 10 items"):
        GroupedBatchSampler([1.0] * 10, batch_size=2, repeat_factors=[1, 2, 3])


def test_training_loader_reports_and_uses_repeat_factors(tmp_path, caplog):
    import logging

    from detkit.data.build import build_dataloader
    from detkit.data.synthetic import make_shapes

    paths = make_shapes(tmp_path / "s", num_train=12, num_val=0, size=(64, 64), train_class_weights=[1, 1, 1, 0.1])
    split = {"type": "CocoDataset", "ann_file": str(paths["train_ann_file"]), "img_dir": str(paths["train_img_dir"])}
    cfg = {"data": {"batch_size": 2, "num_workers": 0, "repeat_threshold": 0.5, "train": split}}
    with caplog.at_level(logging.INFO, logger="detkit"):
        loader = build_dataloader(cfg, "train")
    factors = loader.batch_sampler.repeat_factors
    assert factors is not None and factors.max() > 1.0 and len(loader) == int(np.ceil(factors.sum() / 2))
    assert "repeat-factor sampling (data.repeat_threshold 0.5)" in caplog.text and "draws expected" in caplog.text
    cfg["data"]["repeat_threshold"] = 0
    assert build_dataloader(cfg, "train").batch_sampler.repeat_factors is None
