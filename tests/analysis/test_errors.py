"""TIDE-style error breakdown: hand-made cases of one error type each, and consistency with the COCO metrics."""

from __future__ import annotations

import pytest
from fake_coco import det, make_gt

from detkit.analysis import ERROR_TYPES, error_breakdown, load_gt, load_results, plot_errors
from detkit.analysis.errors import ORACLES, errors_figure, write_errors_csv
from detkit.analysis.figures import pyplot
from detkit.evaluation import coco_metrics

# two images: image 1 has one c1 object, image 2 one c2 object
GT = make_gt({1: [(1, 10, 10, 40, 40)], 2: [(2, 20, 20, 40, 40)]}, num_cats=2)


def _breakdown(dets, gt=GT, **kw):
    coco_gt = load_gt(gt)
    return error_breakdown(coco_gt, load_results(dets, coco_gt), **kw)


def _only(rep, kind):
    others = {k: v for k, v in rep.delta_ap.items() if k not in (kind, "false_positives", "false_negatives")}
    assert all(v == 0 for v in others.values()), others


def test_localization_only():
    dets = [
        det(1, 1, 30, 30, 40, 40, 0.9),  # IoU with its gt: 400/2800 + ... in [0.1, 0.5)
        det(2, 2, 20, 20, 40, 40, 0.8),
    ]  # perfect
    rep = _breakdown(dets)
    assert rep.counts["localization"] == 1 and sum(rep.counts[k] for k in ERROR_TYPES) == 1
    assert rep.ap == pytest.approx(0.5)
    assert rep.ap + rep.delta_ap["localization"] == pytest.approx(1.0)
    _only(rep, "localization")


def test_classification_only():
    dets = [det(1, 2, 11, 10, 40, 40, 0.9), det(2, 2, 20, 20, 40, 40, 0.8)]
    rep = _breakdown(dets)
    assert rep.counts["classification"] == 1 and rep.counts["missed"] == 0
    assert rep.ap + rep.delta_ap["classification"] == pytest.approx(1.0)
    _only(rep, "classification")


def test_duplicate_background_missed_and_both():
    gt = make_gt({1: [(1, 10, 10, 40, 40)], 2: [(2, 20, 20, 40, 40)], 3: [(1, 30, 30, 30, 30)]}, num_cats=2)
    dets = [
        det(3, 1, 80, 80, 15, 15, 0.95),  # background
        det(2, 1, 35, 35, 40, 40, 0.7),  # wrong class, IoU 0.24 with the c2 object: both
        det(1, 1, 10, 10, 40, 40, 0.6),  # true positive
        det(1, 1, 11, 11, 40, 40, 0.5),  # duplicate of it
        det(3, 1, 30, 30, 30, 30, 0.4),
    ]  # true positive, ranked after three false positives
    rep = _breakdown(dets, gt=gt)
    assert {k: rep.counts[k] for k in ERROR_TYPES} == {
        "classification": 0,
        "localization": 0,
        "both": 1,
        "duplicate": 1,
        "background": 1,
        "missed": 1,
    }
    assert rep.counts["false_positives"] == 3 and rep.counts["false_negatives"] == 1
    for kind in ("both", "duplicate", "background", "missed"):  # each costs AP here
        assert rep.delta_ap[kind] > 0, kind
    assert rep.delta_ap["localization"] == rep.delta_ap["classification"] == 0
    # removing every false positive makes c1 perfect; c2 (never found) stays 0
    assert rep.ap + rep.delta_ap["false_positives"] == pytest.approx(0.5)
    assert rep.ap + rep.delta_ap["false_negatives"] < 1.0


def test_base_ap_is_the_reported_ap50(shapes_preds, tmp_path):
    gt_path, _, _, preds = shapes_preds
    rep = _breakdown(preds, gt=gt_path)
    assert rep.ap == pytest.approx(coco_metrics(gt_path, preds)["bbox/AP50"], abs=1e-12)
    assert rep.counts["false_positives"] == sum(rep.counts[k] for k in ERROR_TYPES if k != "missed")
    assert all(v >= -1e-9 for v in rep.delta_ap.values())
    assert rep.ap + rep.delta_ap["false_positives"] + rep.delta_ap["false_negatives"] >= rep.ap
    assert plot_errors(rep, tmp_path / "e.png").stat().st_size > 15_000
    assert write_errors_csv(rep, tmp_path / "e.csv").read_text().startswith("error,count,delta_AP@0.5 (0-1)\n")
    fig = errors_figure(rep)  # the bars are the delta AP in percentage points, one per type, counts on top
    try:
        ax = fig.axes[0]
        kinds = list(ERROR_TYPES) + list(ORACLES)
        assert [t.get_text() for t in ax.get_xticklabels()] == [k.replace("_", " ") for k in kinds]
        heights = [p.get_height() for p in ax.patches]
        assert heights == pytest.approx([100 * rep.delta_ap[k] for k in kinds])
        assert [t.get_text().split("(n=")[1].rstrip(")") for t in ax.texts] == [str(rep.counts[k]) for k in kinds]
        assert "percentage points" in ax.get_ylabel() and f"AP50 = {100 * rep.ap:.1f} %" in ax.get_title()
    finally:
        pyplot().close(fig)


def test_perfect_predictions_have_no_errors():
    rep = _breakdown([det(1, 1, 10, 10, 40, 40), det(2, 2, 20, 20, 40, 40)])
    assert rep.ap == pytest.approx(1.0) and not any(rep.counts.values()) and not any(rep.delta_ap.values())


def test_segm_localization_fix_takes_the_ground_truth_mask():
    import numpy as np
    from pycocotools import mask as mask_utils

    gt = make_gt({1: [(1, 10, 10, 40, 40)], 2: [(2, 20, 20, 40, 40)]}, num_cats=2)
    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        a["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]

    def rle(x, y, w, h):
        m = np.zeros((100, 100), np.uint8, order="F")
        m[y : y + h, x : x + w] = 1
        r = mask_utils.encode(m)
        r["counts"] = r["counts"].decode()
        return r

    dets = [
        {"image_id": 1, "category_id": 1, "segmentation": rle(30, 30, 40, 40), "score": 0.9},
        {"image_id": 2, "category_id": 2, "segmentation": rle(20, 20, 40, 40), "score": 0.8},
    ]
    coco_gt = load_gt(gt, "segm")
    rep = error_breakdown(coco_gt, load_results(dets, coco_gt, "segm"), "segm")
    assert rep.counts["localization"] == 1 and rep.ap == pytest.approx(0.5)
    assert rep.ap + rep.delta_ap["localization"] == pytest.approx(1.0)
    _only(rep, "localization")


def test_progress_bar_on_a_terminal_only(shapes_preds, monkeypatch):
    """The breakdown re-runs COCOeval once per error type: on a terminal a bar with an ETA counts the runs."""
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    gt_path, _, _, preds = shapes_preds
    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    rep = _breakdown(preds, gt=gt_path)
    runs = 1 + sum(1 for k in (*ERROR_TYPES, *ORACLES) if rep.counts[k])
    assert "error breakdown: 100%" in screen.getvalue() and f"{runs}/{runs}" in screen.getvalue()
    assert "<" in screen.getvalue()  # tqdm's elapsed<remaining (the ETA)
    pipe = io.StringIO()  # not a terminal: nothing written
    monkeypatch.setattr(sys, "stderr", pipe)
    _breakdown(preds, gt=gt_path)
    assert pipe.getvalue() == ""
