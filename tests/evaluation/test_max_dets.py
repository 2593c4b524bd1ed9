"""COCO AP counts at most max_dets detections per image (pycocotools' maxDets, COCO's 100): an image with more
objects capped AP below 1 without a word (a 600-object aerial image scored the ground truth itself at AP 0.63)."""

from __future__ import annotations

import warnings

import pytest

from detkit.evaluation import CocoEvaluator, build_evaluator, coco_metrics


def _dense(n: int) -> tuple[dict, list[dict]]:
    """One 400x400 image with ``n`` 10x10 objects on a grid, and the ground truth itself as results."""
    anns = [
        {"id": k + 1, "image_id": 1, "category_id": 1, "bbox": [float(20 * (k % 20)), float(20 * (k // 20)), 10.0, 10.0],
         "area": 100.0, "iscrowd": 0}
        for k in range(n)
    ]  # fmt: skip
    gt = {
        "images": [{"id": 1, "file_name": "a.png", "width": 400, "height": 400}],
        "annotations": anns,
        "categories": [{"id": 1, "name": "dot"}],
    }
    results = [{"image_id": 1, "category_id": 1, "bbox": a["bbox"], "score": 1.0 - a["id"] / 1000} for a in anns]
    return gt, results


def test_coco_metrics_counts_max_dets_per_image():
    gt, results = _dense(150)
    assert coco_metrics(gt, results)["bbox/AP"] < 0.7  # 100 of 150 found at best
    assert coco_metrics(gt, results, max_dets=200)["bbox/AP"] == pytest.approx(1.0)
    assert coco_metrics(gt, results, max_dets=200)["bbox/AR100"] == pytest.approx(1.0)  # the last AR: at 200


def test_under_ten_detections_per_image():
    """pycocotools sorts maxDets: [1, 10, 3] became [1, 3, 10] and AP was taken at 10 (the review found it)."""
    from detkit.evaluation.coco_metrics import evaluate_coco

    gt, results = _dense(5)
    out = evaluate_coco(gt, results, max_dets=3)
    assert out.metrics["bbox/AP"] < 0.7 and out.metrics["bbox/AR100"] == pytest.approx(0.6)
    assert "maxDets=3 ] =" in out.log and list(out.cocoeval.params.maxDets) == [1, 3, 3]
    assert coco_metrics(gt, results, max_dets=1)["bbox/AR100"] == pytest.approx(0.2)


def test_evaluator_warns_once_on_crowded_images_and_takes_the_config_value():
    gt, results = _dense(150)
    ev = CocoEvaluator(ann_file=None, dataset=type("D", (), {"coco": gt})())
    ev._per_image = {1: results}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = ev.compute()
        ev.compute()
    said = [str(w.message) for w in caught if "more objects than" in str(w.message)]
    assert len(said) == 1 and "image id 1: 150 objects" in said[0] and "train.eval_max_dets" in said[0]
    assert first["bbox/AP"] < 0.7
    cfg = {"model": {"type": "YOLODetector"}, "train": {"eval_max_dets": 300}}
    ev = build_evaluator(cfg, type("D", (), {"coco": gt, "class_names": ["dot"], "label_to_cat_id": {0: 1}})())
    assert ev.max_dets == 300
    ev._per_image = {1: results}
    assert ev.compute()["bbox/AP"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="max_dets"):
        CocoEvaluator(dataset=type("D", (), {"coco": gt})(), max_dets=0)


def test_analyze_counts_max_dets_and_warns_on_crowded_images(tmp_path, tool_in_process):
    import json

    gt, results = _dense(150)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(results))
    args = [tmp_path / "gt.json", tmp_path / "res.json", "--no-tide"]
    capped = tool_in_process("analyze", [*args, "--out-dir", tmp_path / "a"])
    assert capped.returncode == 0, capped.stderr
    assert "image id 1: 150 objects" in capped.stderr and "--max-dets" in capped.stderr
    full = tool_in_process("analyze", [*args, "--out-dir", tmp_path / "b", "--max-dets", "200"])
    assert full.returncode == 0 and "objects than" not in full.stderr
    ap = {d: json.loads((tmp_path / d / "summary.json").read_text())["metrics"]["bbox/AP"] for d in ("a", "b")}
    assert ap["a"] < 0.7 and ap["b"] == pytest.approx(1.0)
