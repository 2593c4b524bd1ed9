"""Predictions and ground truth that disagree on categories or images: loud warnings, or an error."""

from __future__ import annotations

import pytest

from detkit.evaluation import coco_metrics
from detkit.evaluation.checks import (
    CategoryMismatchWarning,
    ResultsMismatchError,
    check_image_ids,
    class_names_mismatch,
    coverage_mismatch,
    results_category_mismatch,
)

GT_CATS = {1: "circle", 2: "rectangle", 3: "triangle"}


def _gt() -> dict:
    images = [{"id": i, "width": 50, "height": 50, "file_name": f"{i}.png"} for i in (1, 2, 3, 4)]
    anns = [
        {"id": i, "image_id": i, "category_id": 1 + i % 3, "bbox": [5, 5, 20, 20], "area": 400.0, "iscrowd": 0}
        for i in (1, 2, 3, 4)
    ]
    cats = [{"id": k, "name": v} for k, v in GT_CATS.items()]
    return {"images": images, "annotations": anns, "categories": cats}


def _as_preds(gt: dict, shift: int = 0) -> list[dict]:
    return [
        {"image_id": a["image_id"], "category_id": a["category_id"] + shift, "bbox": a["bbox"], "score": 0.9}
        for a in gt["annotations"]
    ]


def test_class_names_in_another_order():
    assert class_names_mismatch(["a", "b"], ["a", "b"]) is None
    msg = class_names_mismatch(["b", "a", "c"], ["a", "b", "c"], "checkpoint best.pth", "data.val (val.json)")
    assert "checkpoint best.pth has the class names of data.val (val.json) in another order" in msg
    assert "label 0: b vs a; label 1: a vs b" in msg and "label 2" not in msg and "Likely fix" in msg
    msg = class_names_mismatch(["cat", "dog"], ["a", "b"])
    assert "other class names" in msg and "label 0: cat vs a" in msg
    assert "has 2 classes" in class_names_mismatch(["a", "b"], ["a", "b", "c"])


def test_unknown_and_zero_based_category_ids():
    zero_based = [{"category_id": c} for c in (0, 1, 2)]
    (msg,) = results_category_mismatch(zero_based, GT_CATS, "preds.json", "val.json")
    assert msg.startswith("preds.json: 1 prediction(s) have category ids (0) that val.json lacks (its ids: 1, 2, 3)")
    assert "0-based labels" in msg
    (msg,) = results_category_mismatch([{"category_id": 17}] * 3, GT_CATS)
    assert "3 prediction(s) have category ids (17)" in msg and "0-based" not in msg
    assert results_category_mismatch([{"category_id": 2, "category_name": "rectangle"}], GT_CATS) == []


def test_category_names_that_differ_for_the_same_id():
    recs = [{"category_id": 1, "category_name": "rectangle"}, {"category_id": 2, "category_name": "circle"}]
    (msg,) = results_category_mismatch(recs, GT_CATS, "p.json", "gt.json")
    assert "category names differ from gt.json's for the same ids (id 1: rectangle vs circle; id 2: circle vs" in msg


def test_image_ids():
    check_image_ids([1, 2], [1, 2, 3])
    with pytest.raises(ResultsMismatchError, match=r"none of its 2 image ids \(101, 102\) is in gt"):
        check_image_ids([101, 102], [1, 2, 3], "p", "gt")
    with pytest.raises(ResultsMismatchError, match=r"1 of its 2 image ids \(101\) are not in gt"):
        check_image_ids([1, 101], [1, 2, 3], "p", "gt")
    assert coverage_mismatch([1], [1, 2, 3, 4], "p", "gt").startswith("p: predictions cover only 1 of the 4 images")
    assert coverage_mismatch([1, 2], [1, 2, 3, 4]) is None


def test_coco_metrics_warns_and_still_scores():
    gt = _gt()
    with pytest.warns(CategoryMismatchWarning, match="0-based labels"):
        m = coco_metrics(gt, _as_preds(gt, shift=-1))
    assert 0 <= m["bbox/AP"] < 1  # shifted labels: the classes are wrong, and the warning said so
    with pytest.raises(ValueError, match="none of its"):
        coco_metrics(gt, [{**r, "image_id": r["image_id"] + 100} for r in _as_preds(gt)])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"bbox": [1, 2, 3]}, r"bbox \[1, 2, 3\] is not \[x, y, width, height\] of 4 finite numbers"),
        ({"bbox": None}, r"bbox None is not"),
        ({"score": "0.5"}, r"score '0.5' is not a finite number"),
        ({"score": float("nan")}, "score nan is not a finite number"),
        ({"category_id": "1"}, r"category_id '1' is not an integer \(a number written as text\)"),
    ],
)
def test_malformed_result_records_are_named(change, message):
    """A record with values of the wrong type or a box that is no box: one error naming the record and the form
    (pycocotools crashed on some, scored NaN scores silently)."""
    gt = _gt()
    preds = _as_preds(gt)
    preds[1] = {**preds[1], **change}
    with pytest.raises(ResultsMismatchError, match=rf"result #1 \(image_id .*\): {message}"):
        coco_metrics(gt, preds)
