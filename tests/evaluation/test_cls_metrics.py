"""ClsEvaluator: top-1 / top-5, per-class precision / recall / F1 and the confusion matrix equal a hand count."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from detkit.evaluation.classification import METRIC_NAMES, ClsEvaluator

NAMES = ["a", "b", "c", "d", "e", "f"]
# (true class, classes from most to least likely) of 8 made-up images; class f has no image
IMAGES = [
    (0, [0, 1, 2, 3, 4, 5]),  # right
    (0, [1, 0, 2, 3, 4, 5]),  # wrong, in the top 5
    (1, [1, 0, 2, 3, 4, 5]),  # right
    (2, [0, 1, 3, 4, 5, 2]),  # wrong, last: not in the top 5
    (2, [2, 0, 1, 3, 4, 5]),  # right
    (3, [3, 0, 1, 2, 4, 5]),  # right
    (3, [1, 3, 0, 2, 4, 5]),  # wrong, in the top 5
    (4, [5, 0, 1, 2, 3, 4]),  # wrong, last
]


def _batch(items, first_id):
    preds, targets = [], []
    for gt, ranking in items:
        scores = torch.zeros(len(NAMES))
        scores[torch.tensor(ranking)] = torch.linspace(0.5, 0.01, len(NAMES))
        preds.append({"scores": scores / scores.sum(), "labels": torch.tensor(ranking[:5])})
        targets.append({"labels": torch.tensor([gt]), "boxes": torch.zeros(0, 4)})
    return {"targets": targets, "image_ids": list(range(first_id, first_id + len(items)))}, preds


def _evaluated():
    ev = ClsEvaluator(len(NAMES), NAMES)
    for start in (0, 5):  # two batches
        ev.process(*_batch(IMAGES[start : start + 5], start))
    return ev


def test_metrics_equal_a_hand_count():
    ev = _evaluated()
    m = ev.compute()
    assert set(m) == set(METRIC_NAMES)
    assert m["cls/top1"] == pytest.approx(4 / 8)
    assert m["cls/top5"] == pytest.approx(6 / 8)
    assert m["cls/mean_acc"] == pytest.approx((0.5 + 1 + 0.5 + 0.5 + 0) / 5)  # classes with images only
    assert m["cls/macro_f1"] == pytest.approx((0.5 + 0.5 + 2 / 3 + 2 / 3 + 0) / 5)
    expected = [[1, 1, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [1, 0, 1, 0, 0, 0], [0, 1, 0, 1, 0, 0], [0] * 5 + [1], [0] * 6]
    assert ev.confusion.tolist() == expected


def test_per_class_rows_equal_a_hand_count():
    rows = {r.name: r for r in _evaluated_rows()}
    assert (rows["a"].precision, rows["a"].recall, rows["a"].f1) == pytest.approx((0.5, 0.5, 0.5))
    assert (rows["b"].precision, rows["b"].recall, rows["b"].f1) == pytest.approx((1 / 3, 1.0, 0.5))
    assert (rows["c"].precision, rows["c"].recall, rows["c"].f1) == pytest.approx((1.0, 0.5, 2 / 3))
    assert rows["b"].support == 1 and rows["b"].predicted == 3
    assert math.isnan(rows["e"].precision) and rows["e"].recall == 0 and rows["e"].f1 == 0  # never predicted
    assert math.isnan(rows["f"].recall) and rows["f"].precision == 0 and math.isnan(rows["f"].f1)  # no image
    assert rows["c"].accuracy == rows["c"].recall


def _evaluated_rows():
    ev = _evaluated()
    ev.compute()
    return ev.per_class


def test_records_name_each_image_with_the_probability_of_its_class():
    ev = _evaluated()
    ev.compute()
    assert [r[:3] for r in ev.records][:4] == [(0, 0, 0), (1, 0, 1), (2, 1, 1), (3, 2, 0)]
    assert ev.records[3][3] == pytest.approx(0.01 / (6 * (0.5 + 0.01) / 2))  # class c ranked last: the lowest score


def test_top5_uses_every_class_when_there_are_fewer_than_five():
    ev = ClsEvaluator(3)
    ev.process({"targets": [{"labels": torch.tensor([2])}]}, [{"scores": torch.tensor([0.5, 0.3, 0.2])}])
    m = ev.compute()
    assert m["cls/top1"] == 0.0 and m["cls/top5"] == 1.0


def test_reset_forgets_and_bad_inputs_are_named():
    ev = _evaluated()
    ev.reset()
    assert math.isnan(ev.compute()["cls/top1"])
    with pytest.raises(ValueError, match="image 7 has label 9"):
        ev.process({"targets": [{"labels": torch.tensor([9])}], "image_ids": [7]}, [{"scores": torch.ones(6) / 6}])
    with pytest.raises(ValueError, match="image 3 has 0 labels and 6 scores"):
        ev.process({"targets": [{"labels": torch.zeros(0)}], "image_ids": [3]}, [{"scores": torch.ones(6) / 6}])


def test_write_report_writes_the_tables_and_the_heat_map(tmp_path):
    ev = _evaluated()
    assert ev.write_report(tmp_path) == []  # nothing computed yet
    ev.compute()
    files = ev.write_report(tmp_path)
    assert sorted(p.name for p in files) == ["confusion_matrix.csv", "confusion_matrix.png", "per_class.csv"]
    with open(tmp_path / "per_class.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["class"] for r in rows] == NAMES
    assert float(rows[1]["precision"]) == pytest.approx(1 / 3) and rows[4]["precision"] == ""
    with open(tmp_path / "confusion_matrix.csv") as f:
        cm = list(csv.reader(f))
    assert cm[0][1:] == [f"pred:{n}" for n in NAMES]
    assert [[int(v) for v in r[1:]] for r in cm[1:]] == ev.confusion.tolist()
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 1000
    assert "cls/top1=0.500" in ev.summary()


class _Labels:
    """A stand-in classification dataset: one label per sample."""

    def __init__(self, labels, num_classes):
        self.labels, self.num_classes = torch.tensor(labels).numpy(), num_classes
        self.class_counts = [int((self.labels == k).sum()) for k in range(num_classes)]

    def __len__(self):
        return len(self.labels)


def test_check_gt_names_what_a_classifier_cannot_be_evaluated_on(caplog):
    ClsEvaluator(3, dataset=_Labels([0, 1, 2, 1], 3)).check_gt()  # fine
    with pytest.raises(ValueError, match="one class per image.*ImageFolderDataset"):
        ClsEvaluator(3, dataset=[{"boxes": 1}, {"boxes": 2}]).check_gt()  # e.g. detection data
    with pytest.raises(ValueError, match="has 4 classes but the model 3; .*classes: <data.train.img_dir>"):
        ClsEvaluator(3, dataset=_Labels([0, 1], 4)).check_gt()
    with pytest.raises(ValueError, match=r"labels outside 0..2 \(min 0, max 5\)"):
        ClsEvaluator(3, dataset=_Labels([0, 5], 3)).check_gt()
    with caplog.at_level("WARNING", logger="detkit"):
        ClsEvaluator(3, ["a", "b", "c"], dataset=_Labels([0, 0], 3)).check_gt()
    assert "no image of 2 of the 3 classes (b, c)" in caplog.text


def test_build_evaluator_picks_the_classification_evaluator():
    from detkit.evaluation import build_evaluator

    data = _Labels([0, 1], 2)
    data.class_names = ["cat", "dog"]
    for model in ({"type": "Classifier"}, {"type": "MyNet", "head": {"type": "ClsHead"}}):
        ev = build_evaluator({"model": model}, data)
        assert isinstance(ev, ClsEvaluator) and ev.class_names == ["cat", "dog"] and ev.num_classes == 2
    assert build_evaluator({"model": {"type": "Classifier", "num_classes": 2}}, data).dataset is data
