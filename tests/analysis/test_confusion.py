"""Confusion matrix: counts add up, hand-made cases land in the right cells, crowd regions are ignored."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from fake_coco import det, make_gt

from detkit.analysis import confusion_matrix, load_gt, load_results, plot_confusion_matrix, write_confusion_csv
from detkit.analysis.common import category_names

BG = 3  # index of the background row / column with 3 categories


def _cm(gt: dict, dets: list[dict], **kw):
    coco_gt = load_gt(gt)
    return confusion_matrix(coco_gt, load_results(dets, coco_gt), **kw)


def test_counts_add_up_on_shapes(shapes_preds):
    _gt_path, _, gt, preds = shapes_preds
    for score_thr, iou_thr in ((0.0, 0.5), (0.3, 0.5), (0.6, 0.75), (0.3, 0.1)):
        cm = _cm(gt, preds, score_thr=score_thr, iou_thr=iou_thr)
        K = len(gt["categories"])
        assert cm.matrix.shape == (K + 1, K + 1) and cm.matrix[K, K] == 0
        assert cm.num_gt == len(gt["annotations"])
        assert cm.matrix[:K].sum() == cm.num_gt  # every ground truth exactly once
        kept = sum(p["score"] >= score_thr for p in preds)
        assert cm.matrix[:, :K].sum() + cm.num_ignored_predictions == kept  # every prediction once
        assert cm.matrix.sum() == cm.num_gt + cm.num_unmatched_predictions
    # the diagonal is the true positives; lower thresholds never find fewer
    loose, strict = _cm(gt, preds, score_thr=0.0), _cm(gt, preds, score_thr=0.6)
    assert np.trace(loose.matrix[:K, :K]) >= np.trace(strict.matrix[:K, :K]) > 0


def test_hand_made_cells():
    gt = make_gt({1: [(1, 10, 10, 30, 30), (2, 50, 50, 30, 30), (3, 5, 60, 20, 20)], 2: [(2, 10, 10, 40, 40)]})
    dets = [
        det(1, 1, 10, 10, 30, 30, 0.9),  # correct: (c1, c1)
        det(1, 3, 51, 50, 30, 30, 0.8),  # mislabelled c2 as c3: (c2, c3)
        det(1, 2, 70, 5, 20, 20, 0.7),  # false positive: (background, c2)
        det(2, 2, 10, 10, 40, 40, 0.95),  # correct: (c2, c2)
        det(2, 2, 11, 10, 40, 40, 0.2),
    ]  # under the score threshold: not counted
    cm = _cm(gt, dets, score_thr=0.3, iou_thr=0.5)
    want = np.zeros((4, 4), np.int64)
    want[0, 0] = 1
    want[1, 2] = 1
    want[BG, 1] = 1
    want[1, 1] = 1
    want[2, BG] = 1  # the c3 box at (5, 60) was missed: (c3, background)
    np.testing.assert_array_equal(cm.matrix, want)
    assert (cm.num_gt, cm.num_unmatched_predictions) == (4, 1) and cm.matrix.sum() == 5


def test_same_class_match_wins_over_a_better_other_class_overlap():
    # a det of class 1 overlapping two gts: the c1 gt (IoU 0.6) is preferred to the c2 gt (IoU 0.9)
    gt = make_gt({1: [(1, 0, 0, 50, 50), (2, 10, 0, 45, 50)]})
    cm = _cm(gt, [det(1, 1, 10, 0, 50, 50)], iou_thr=0.5)
    assert cm.matrix[0, 0] == 1 and cm.matrix[1, BG] == 1 and cm.matrix.sum() == 2


def test_crowd_region_ignores_predictions():
    gt = make_gt({1: [(1, 10, 10, 20, 20), (1, 50, 50, 40, 40, 1)]})  # second one is a crowd region
    dets = [det(1, 1, 10, 10, 20, 20), det(1, 1, 55, 55, 10, 10, 0.8), det(1, 2, 0, 70, 10, 10, 0.8)]
    cm = _cm(gt, dets)
    assert cm.num_gt == 1 and cm.num_ignored_predictions == 1 and cm.num_unmatched_predictions == 1
    assert cm.matrix[0, 0] == 1 and cm.matrix[BG, 1] == 1 and cm.matrix.sum() == 2


def test_csv_and_png(tmp_path, shapes_preds):
    _, _, gt, preds = shapes_preds
    cm = _cm(gt, preds)
    rows = list(csv.reader(write_confusion_csv(cm, tmp_path / "cm.csv").open()))
    assert rows[0][1:] == ["pred:circle", "pred:rectangle", "pred:triangle", "pred:star", "pred:background"]
    assert [r[0] for r in rows[1:]][-1] == "gt:background"
    assert np.array([[int(v) for v in r[1:]] for r in rows[1:]]).tolist() == cm.matrix.tolist()
    png = plot_confusion_matrix(cm, tmp_path / "cm.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 15_000


def test_figure_shows_the_matrix(shapes_preds):
    """The heat map is the row-normalised matrix, the labels are the classes then background, texts the counts."""
    from detkit.analysis.confusion import confusion_figure
    from detkit.analysis.figures import pyplot

    _, _, gt, preds = shapes_preds
    cm = _cm(gt, preds)
    fig = confusion_figure(cm)
    try:
        ax = fig.axes[0]
        shown = np.asarray(ax.get_images()[0].get_array())
        rows = cm.matrix.sum(1, keepdims=True)
        np.testing.assert_allclose(shown, cm.matrix / np.maximum(rows, 1))
        names = ["circle", "rectangle", "triangle", "star", "background"]
        assert [t.get_text() for t in ax.get_xticklabels()] == names
        assert [t.get_text() for t in ax.get_yticklabels()] == names
        assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class (ground truth)"
        counts = sorted(int(t.get_text()) for t in ax.texts)
        assert counts == sorted(int(v) for v in cm.matrix.ravel() if v)
        assert f"{cm.num_gt} ground truths" in ax.get_title()
    finally:
        pyplot().close(fig)


def test_segm_confusion_uses_masks():
    gt = make_gt({1: [(1, 10, 10, 30, 30)]}, num_cats=1)
    gt["annotations"][0]["segmentation"] = [[10, 10, 40, 10, 40, 40, 10, 40]]
    from pycocotools import mask as mask_utils

    m = np.zeros((100, 100), np.uint8, order="F")
    m[10:40, 10:40] = 1
    rle = mask_utils.encode(m)
    rle["counts"] = rle["counts"].decode()
    coco_gt = load_gt(gt, "segm")
    res = load_results([{"image_id": 1, "category_id": 1, "segmentation": rle, "score": 0.9}], coco_gt, "segm")
    cm = confusion_matrix(coco_gt, res, "segm")
    assert cm.matrix.tolist() == [[1, 0], [0, 0]]
    with pytest.raises(ValueError, match="class names"):
        category_names(coco_gt, ["a", "b"])
