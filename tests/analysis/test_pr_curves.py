"""PR curves come from COCOeval's precision array: their means are the reported APs; the figure plots them."""

from __future__ import annotations

import numpy as np
import pytest

from detkit.analysis import load_gt, load_results, per_class_table, plot_pr_curves, pr_curves, run_cocoeval
from detkit.analysis.figures import pyplot
from detkit.analysis.precision_recall import pr_curves_figure
from detkit.evaluation import coco_metrics


def test_curves_average_to_the_reported_ap(shapes_preds, tmp_path):
    gt_path, _, _, preds = shapes_preds
    coco_gt = load_gt(gt_path)
    E = run_cocoeval(coco_gt, load_results(preds, coco_gt))
    m = coco_metrics(gt_path, preds)
    rows = per_class_table(E)
    recall, per_class, overall = pr_curves(E, 0.5)
    assert recall.shape == (101,) and per_class.shape == (4, 101)
    assert overall.mean() == pytest.approx(m["bbox/AP50"], abs=1e-12)
    np.testing.assert_allclose(per_class.mean(1), [r.AP50 for r in rows], atol=1e-12)
    _, per_class_all, overall_all = pr_curves(E, None)
    assert overall_all.mean() == pytest.approx(m["bbox/AP"], abs=1e-12)
    np.testing.assert_allclose(per_class_all.mean(1), [r.AP for r in rows], atol=1e-12)
    _, _, overall75 = pr_curves(E, 0.75)
    assert overall75.mean() == pytest.approx(m["bbox/AP75"], abs=1e-12)
    assert np.all(np.diff(overall) <= 1e-12)  # COCO's interpolated precision never rises with recall
    with pytest.raises(ValueError, match="not one of"):
        pr_curves(E, 0.52)
    png = plot_pr_curves(E, tmp_path / "pr.png")
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 30_000


def test_figure_plots_the_curves(shapes_preds):
    """The figure holds what it says: per axis one line per class with its AP, a black all-classes line."""
    gt_path, _, _, preds = shapes_preds
    coco_gt = load_gt(gt_path)
    E = run_cocoeval(coco_gt, load_results(preds, coco_gt))
    fig = pr_curves_figure(E, ["c", "r", "t", "s"])
    try:
        for ax, iou, title in zip(fig.axes, (0.5, None), ("IoU 0.5", "IoU 0.50:0.95")):
            recall, per_class, overall = pr_curves(E, iou)
            assert title in ax.get_title() and ax.get_xlabel() == "recall" and ax.get_xlim() == (0, 1)
            lines = ax.get_lines()
            assert len(lines) == 5  # four classes with ground truth + all classes
            for k, line in enumerate(lines[:4]):
                np.testing.assert_array_equal(line.get_xdata(), recall)
                np.testing.assert_array_equal(line.get_ydata(), per_class[k])
                assert line.get_label() == f"{'crts'[k]} (AP {per_class[k].mean():.3f})"
            np.testing.assert_array_equal(lines[4].get_ydata(), overall)
            assert lines[4].get_color() == "black" and lines[4].get_label().startswith("all classes (AP")
        assert fig.axes[0].get_ylabel() == "precision (interpolated, COCO)"
    finally:
        pyplot().close(fig)


def test_class_without_ground_truth_has_no_curve(tmp_path):
    from fake_coco import det, make_gt

    coco_gt = load_gt(make_gt({1: [(1, 10, 10, 20, 20)]}, num_cats=2))
    E = run_cocoeval(coco_gt, load_results([det(1, 1, 10, 10, 20, 20), det(1, 2, 50, 50, 9, 9)], coco_gt))
    _, per_class, overall = pr_curves(E, 0.5)
    assert np.isnan(per_class[1]).all() and overall.mean() == pytest.approx(1.0)
    fig = pr_curves_figure(E)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    pyplot().close(fig)
    assert labels == ["c1 (AP 1.000)", "all classes (AP 1.000)"]  # no line for c2, which has no ground truth
    assert plot_pr_curves(E, tmp_path / "pr.png").is_file()
