"""Detection confusion matrix at a score and IoU threshold, with a background row and column.

Rows are ground truth (categories in id order, then ``background``), columns predictions (same order).
Per image, predictions scoring at least ``score_thr`` are matched to ground truths in three passes:

1. same class, COCO style: each prediction, best score first, takes the unmatched ground truth of its
   class with the highest IoU >= ``iou_thr`` -> cell (c, c);
2. any class: each prediction left takes the unmatched ground truth of any class with the highest
   IoU >= ``iou_thr`` -> cell (true class, predicted class);
3. a prediction still unmatched whose crowd overlap (intersection over its area) with a crowd / ignore
   region is >= ``iou_thr`` is ignored (COCOeval does not count it either); the others go to
   (background, predicted class).

Ground truths left unmatched go to (true class, background). Crowd / ignore regions are never rows.
So ``matrix.sum() == num_gt + num_unmatched_predictions``, where ``num_gt`` counts the non-crowd ground
truths and ``num_unmatched_predictions`` the predictions of pass 3 that were not ignored.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detkit.analysis.common import iou_matrix, is_ignored_gt
from detkit.analysis.figures import pyplot, save_figure, write_csv

__all__ = [
    "ConfusionResult",
    "ImageMatch",
    "confusion_figure",
    "confusion_matrix",
    "match_image",
    "plot_confusion_matrix",
    "write_confusion_csv",
]


@dataclass
class ImageMatch:
    """One image's matching: ``pairs`` (gt index or -1, det index or -1) into its gts / dets lists."""

    image_id: int
    gts: list[dict]
    dets: list[dict]
    pairs: list[tuple[int, int]] = field(default_factory=list)
    ignored: list[int] = field(default_factory=list)

    @property
    def tp(self) -> int:
        return sum(
            1 for g, d in self.pairs if g >= 0 and d >= 0 and self.gts[g]["category_id"] == self.dets[d]["category_id"]
        )

    @property
    def errors(self) -> int:
        """Missed or mislabelled ground truths + predictions that are not correct detections."""
        counted = len(self.dets) - len(self.ignored)
        return (len(self.gts) - self.tp) + (counted - self.tp)


@dataclass
class ConfusionResult:
    """``matrix`` int64 [K+1, K+1] (rows ground truth, columns prediction, index K = background)."""

    matrix: np.ndarray
    category_ids: list[int]
    names: list[str]
    score_thr: float
    iou_thr: float
    num_gt: int
    num_unmatched_predictions: int
    num_ignored_predictions: int
    images: list[ImageMatch]


def _greedy(
    iou: np.ndarray,
    allowed: np.ndarray,
    det_free: np.ndarray,
    gt_free: np.ndarray,
    thr: float,
    pairs: list[tuple[int, int]],
) -> None:
    """Dets in order (best score first) take the free, allowed gt with the highest IoU >= thr."""
    for d in np.flatnonzero(det_free):
        cand = np.where(allowed[d] & gt_free & (iou[d] >= thr), iou[d], -1.0)
        if cand.size and cand.max() >= 0:
            g = int(cand.argmax())
            pairs.append((g, int(d)))
            gt_free[g], det_free[d] = False, False


def match_image(
    image_id: int, anns: Sequence[dict], dets: Sequence[dict], coco_gt: Any, iou_type: str, iou_thr: float
) -> ImageMatch:
    """Match one image's predictions (already score-filtered) to its annotations (see the module doc)."""
    gts = [a for a in anns if not is_ignored_gt(a)]
    crowd = [a for a in anns if is_ignored_gt(a)]
    dets = sorted(dets, key=lambda r: -r["score"])
    m = ImageMatch(image_id, gts, dets)
    iou = iou_matrix(dets, gts, iou_type, coco_gt)
    same = np.array([[d["category_id"] == g["category_id"] for g in gts] for d in dets], bool)
    same = same.reshape(len(dets), len(gts))
    det_free, gt_free = np.ones(len(dets), bool), np.ones(len(gts), bool)
    _greedy(iou, same, det_free, gt_free, iou_thr, m.pairs)
    _greedy(iou, np.ones_like(same), det_free, gt_free, iou_thr, m.pairs)
    ioa = iou_matrix(dets, crowd, iou_type, coco_gt, crowd=True)
    for d in np.flatnonzero(det_free):
        if crowd and ioa[d].max() >= iou_thr:
            m.ignored.append(int(d))
        else:
            m.pairs.append((-1, int(d)))
    m.pairs += [(int(g), -1) for g in np.flatnonzero(gt_free)]
    return m


def confusion_matrix(
    coco_gt: Any,
    results: Sequence[dict],
    iou_type: str = "bbox",
    score_thr: float = 0.3,
    iou_thr: float = 0.5,
    class_names: Sequence[str] | None = None,
    img_ids: Sequence[int] | None = None,
) -> ConfusionResult:
    """Count matches of ``results`` (validated COCO results) against ``coco_gt`` (see the module doc).

    Returns a ``ConfusionResult``; ``images`` holds every image's matching (for per-image errors).
    """
    cat_ids = sorted(int(c) for c in coco_gt.getCatIds())
    names = list(class_names) if class_names is not None else [str(coco_gt.cats[c].get("name", c)) for c in cat_ids]
    index = {c: i for i, c in enumerate(cat_ids)}
    K = len(cat_ids)
    by_image: dict[int, list[dict]] = {}
    for r in results:
        if r["score"] >= score_thr and r["category_id"] in index:
            by_image.setdefault(r["image_id"], []).append(r)
    matrix = np.zeros((K + 1, K + 1), np.int64)
    images, n_ignored = [], 0
    for img_id in sorted(img_ids) if img_ids is not None else sorted(coco_gt.getImgIds()):
        anns = [a for a in coco_gt.imgToAnns.get(img_id, []) if a["category_id"] in index]
        m = match_image(img_id, anns, by_image.get(img_id, []), coco_gt, iou_type, iou_thr)
        for g, d in m.pairs:
            row = index[m.gts[g]["category_id"]] if g >= 0 else K
            col = index[m.dets[d]["category_id"]] if d >= 0 else K
            matrix[row, col] += 1
        n_ignored += len(m.ignored)
        images.append(m)
    num_gt = sum(len(m.gts) for m in images)
    return ConfusionResult(matrix, cat_ids, names, score_thr, iou_thr, num_gt, int(matrix[K].sum()), n_ignored, images)


def write_confusion_csv(cm: ConfusionResult, path: str | os.PathLike) -> Path:
    """CSV with a header row of predicted classes and one row per true class (``background`` last)."""
    labels = cm.names + ["background"]
    rows = [[f"gt:{labels[i]}"] + cm.matrix[i].tolist() for i in range(len(labels))]
    return write_csv(path, ["gt \\ pred"] + [f"pred:{n}" for n in labels], rows)


def confusion_figure(cm: ConfusionResult, normalize: bool = True):
    """The heat map of ``plot_confusion_matrix`` as a figure: rows true classes, columns predicted ones (the
    class names then 'background' on both axes), colour the share of the row, text the counts."""
    plt = pyplot()
    labels = cm.names + ["background"]
    n = len(labels)
    mat = cm.matrix.astype(np.float64)
    shown = mat / np.maximum(mat.sum(1, keepdims=True), 1) if normalize else mat
    size = max(5.0, min(22.0, 0.45 * n + 3))
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(n), labels, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (ground truth)")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if cm.matrix[i, j]:
                    ax.text(
                        j,
                        i,
                        str(cm.matrix[i, j]),
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if shown[i, j] > 0.6 * (shown.max() or 1) else "black",
                    )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class" if normalize else "count")
    ax.set_title(
        f"Confusion matrix (score >= {cm.score_thr:g}, IoU >= {cm.iou_thr:g}): {cm.num_gt} ground truths, "
        f"{cm.num_unmatched_predictions} unmatched predictions",
        fontsize=9,
    )
    return fig


def plot_confusion_matrix(cm: ConfusionResult, out_path: str | os.PathLike, normalize: bool = True) -> Path:
    """Write :func:`confusion_figure`: colour = share of the row (each true class sums to 1), text = counts."""
    return save_figure(confusion_figure(cm, normalize), out_path)
