"""class_weight: balanced | sqrt from the training set's counts: hand-counted weights, units, absent classes."""

import numpy as np
import pytest

from detkit.data.class_freq import ClassWeights, class_counts


class Detection:
    """Objects per image: class 0 six times, class 1 three times, class 2 once, class 3 never."""

    anns = [[0, 0, 1], [0, 0, 0, 1], [0, 1, 2], []]

    def __len__(self):
        return len(self.anns)

    def get_ann_info(self, i):
        return {"labels": np.array(self.anns[i], dtype=np.int64)}


class Classification:
    labels = np.array([1, 0, 1, 1])

    def __len__(self):
        return 4


def test_counts_objects_of_a_detection_set_and_images_of_a_classification_set():
    counts, unit = class_counts(Detection(), 4)
    assert counts.tolist() == [6, 3, 1, 0] and unit == "objects"
    counts, unit = class_counts(Classification(), 2)
    assert counts.tolist() == [1, 3] and unit == "images"
    with pytest.raises(ValueError, match=r"model.head.class_weight: list does not say .* give model.head"):
        class_counts([1, 2], 2, key="model.head.class_weight")
    with pytest.raises(ValueError, match=r"labels must be 0..1, found 0..2"):
        class_counts(Detection(), 2)


def test_weights_equal_a_hand_count():
    # n = 10 objects over C' = 3 classes with objects: balanced w_c = 10 / (3 n_c), scikit-learn's formula
    bal = ClassWeights([6, 3, 1, 0], "balanced")
    np.testing.assert_allclose(bal.weights[:3], [10 / 18, 10 / 9, 10 / 3])
    assert bal.weights[3] == pytest.approx(10 / 3)  # no objects: the largest weight of the others
    # sqrt: proportional to n_c ** -0.5, scaled so that sum_c n_c w_c = n
    k = 10 / (6 * 6**-0.5 + 3 * 3**-0.5 + 1)
    sq = ClassWeights([6, 3, 1, 0], "sqrt")
    np.testing.assert_allclose(sq.weights, [k * 6**-0.5, k * 3**-0.5, k, k])
    for w in (bal, sq):
        assert float((w.counts * w.weights).sum()) == pytest.approx(10.0)  # mean over the objects is 1
    assert ClassWeights([5, 5], "balanced").as_list() == [1.0, 1.0]  # balanced data: unweighted
    assert bal.as_list() == [0.5556, 1.1111, 3.3333, 3.3333]


def test_report_and_errors():
    lines = ClassWeights([6, 3, 1, 0], "balanced").report(["a", "b", "c", "d"])
    assert lines[0].split() == ["class", "objects", "share", "weight"]
    assert lines[1].split() == ["a", "6", "0.600", "0.556"]
    assert lines[4].split()[:4] == ["d", "0", "0.000", "3.333"] and "none" in lines[4]
    with pytest.raises(ValueError, match="no objects of any class"):
        ClassWeights([0, 0], "sqrt")
    with pytest.raises(ValueError, match="one of balanced, sqrt"):
        ClassWeights([1, 2], "balanaced")
