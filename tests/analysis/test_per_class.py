"""Per-class and per-size tables equal pycocotools' own numbers."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detkit.analysis import load_gt, load_results, per_class_table, run_cocoeval, size_table
from detkit.analysis.per_class import format_table, write_per_class_csv
from detkit.evaluation import coco_metrics, per_class_ap


def _direct(gt_path, preds):
    """Plain pycocotools, as its docs use it."""
    gt = COCO(str(gt_path))
    E = COCOeval(gt, gt.loadRes([dict(p) for p in preds]), "bbox")
    E.evaluate()
    E.accumulate()
    E.summarize()
    return E


def test_per_class_equals_pycocotools(shapes_preds, tmp_path):
    gt_path, _, _, preds = shapes_preds
    E = _direct(gt_path, preds)
    coco_gt = load_gt(gt_path)
    ours = run_cocoeval(coco_gt, load_results(preds, coco_gt))
    rows = per_class_table(ours)
    prec = E.eval["precision"]  # [T, R, K, A, M]; area 'all' = 0, maxDets 100 = -1
    assert [r.category_id for r in rows] == E.params.catIds == [1, 2, 3, 4]
    for k, r in enumerate(rows):
        for value, sl in (
            (r.AP, prec[:, :, k, 0, -1]),
            (r.AP50, prec[0, :, k, 0, -1]),
            (r.AP75, prec[5, :, k, 0, -1]),
            (r.APs, prec[:, :, k, 1, -1]),
            (r.APm, prec[:, :, k, 2, -1]),
            (r.APl, prec[:, :, k, 3, -1]),
        ):
            valid = sl[sl > -1]
            assert value == (np.mean(valid) if valid.size else -1.0)
    assert any(0 < r.AP < 1 for r in rows)
    # the same table as the evaluation package's, and the mean over classes is the reported AP
    base = per_class_ap(ours)
    assert [(r.AP, r.AP50, r.num_gt) for r in rows] == [(b.AP, b.AP50, b.num_gt) for b in base]
    m = coco_metrics(gt_path, preds)
    assert np.mean([r.AP for r in rows if r.AP > -1]) == pytest.approx(m["bbox/AP"], abs=1e-12)
    assert sum(r.num_gt for r in rows) == len(coco_gt.getAnnIds())
    # per size: pycocotools' APs / APm / APl
    sizes = size_table(ours)
    assert [sizes[s]["AP"] for s in ("small", "medium", "large")] == list(E.stats[3:6])
    assert sum(s["num_gt"] for s in sizes.values()) == len(coco_gt.getAnnIds())
    # CSV and text
    path = write_per_class_csv(rows, tmp_path / "per_class.csv")
    table = list(csv.DictReader(path.open()))
    assert [t["name"] for t in table] == ["circle", "rectangle", "triangle", "star"]
    assert float(table[2]["AP50 (0-1)"]) == rows[2].AP50  # the header says the unit
    text = format_table(rows, sizes)
    assert "circle" in text and f"{rows[0].AP:.3f}" in text and "small" in text
    assert text.splitlines()[0].startswith("per-class AP in 0..1")


def test_class_without_ground_truth_is_undefined():
    from fake_coco import det, make_gt

    coco_gt = load_gt(make_gt({1: [(1, 10, 10, 20, 20)]}, num_cats=2))
    E = run_cocoeval(coco_gt, load_results([det(1, 1, 10, 10, 20, 20)], coco_gt))
    rows = per_class_table(E)
    assert pytest.approx(1.0) == rows[0].AP and rows[1].AP == -1 and rows[1].num_gt == 0
