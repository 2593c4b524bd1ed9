"""Precision-recall curves from COCOeval's ``eval['precision']`` (the curves whose mean is the reported AP)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detkit.analysis.figures import pyplot, save_figure
from detkit.evaluation.coco_metrics import max_det_index

__all__ = ["plot_pr_curves", "pr_curves", "pr_curves_figure"]


def pr_curves(cocoeval: Any, iou: float | None = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interpolated precision per recall threshold, per category and over all categories.

    Args:
        cocoeval: an accumulated COCOeval.
        iou: one IoU threshold (e.g. 0.5), or None for the mean over every threshold (0.50:0.95).
    Returns:
        ``recall`` [R] (pycocotools' 101 thresholds), ``per_class`` [K, R] (NaN for a category without
        ground truth), ``overall`` [R] (mean over valid categories). ``per_class[k].mean()`` is the
        category's AP and ``overall.mean()`` the overall AP, exactly as pycocotools averages them
        (area 'all', maxDets 100).
    """
    p = cocoeval.params
    prec = np.asarray(cocoeval.eval["precision"], dtype=np.float64)  # [T, R, K, A, M]
    a = list(p.areaRngLbl).index("all")
    prec = prec[:, :, :, a, max_det_index(p)]  # [T, R, K]
    if iou is not None:
        t = np.where(np.isclose(np.asarray(p.iouThrs), iou))[0]
        if not t.size:
            raise ValueError(f"IoU {iou} is not one of the evaluation's thresholds {list(p.iouThrs)}")
        prec = prec[t]
    # accumulate() leaves -1 only for a whole (category, IoU) slice without ground truth
    valid = prec > -1
    per_class = np.where(
        valid.any(axis=(0, 1))[None, :], np.where(valid, prec, 0).sum(0) / np.maximum(valid.sum(0), 1), np.nan
    ).T  # [K, R]
    overall = np.where(valid, prec, 0).sum((0, 2)) / np.maximum(valid.sum((0, 2)), 1)
    if not valid.any():
        overall[:] = np.nan
    return np.asarray(p.recThrs, dtype=np.float64), per_class, overall


def pr_curves_figure(cocoeval: Any, class_names: Sequence[str] | None = None, title: str = ""):
    """The figure of ``plot_pr_curves``: two axes (IoU 0.5, IoU 0.50:0.95), one line per category with ground
    truth (labelled with its AP in 0..1) and a black 'all classes' line; x recall, y precision."""
    plt = pyplot()
    gt = cocoeval.cocoGt
    cat_ids = list(cocoeval.params.catIds)
    names = list(class_names) if class_names is not None else [gt.cats[c].get("name", str(c)) for c in cat_ids]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), sharey=True)
    many = len(cat_ids) > 20  # COCO's 80 classes: thin lines, no per-class legend
    cmap = plt.get_cmap("tab20" if len(cat_ids) > 10 else "tab10")
    for ax, (iou, label) in zip(axes, ((0.5, "IoU 0.5"), (None, "IoU 0.50:0.95"))):
        recall, per_class, overall = pr_curves(cocoeval, iou)
        for k, name in enumerate(names):
            if np.isnan(per_class[k]).all():
                continue
            ax.plot(
                recall,
                per_class[k],
                color=cmap(k % cmap.N),
                linewidth=0.6 if many else 1.3,
                alpha=0.5 if many else 0.9,
                label=None if many else f"{name} (AP {per_class[k].mean():.3f})",
            )
        if not np.isnan(overall).all():
            ax.plot(recall, overall, color="black", linewidth=2.6, label=f"all classes (AP {overall.mean():.3f})")
        ax.set_title(f"Precision-recall, {label}")
        ax.set_xlabel("recall")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8, loc="lower left")
    axes[0].set_ylabel("precision (interpolated, COCO)")
    if title:
        fig.suptitle(title)
    return fig


def plot_pr_curves(
    cocoeval: Any, out_path: str | os.PathLike, class_names: Sequence[str] | None = None, title: str = ""
) -> Path:
    """Write a two-panel PNG (:func:`pr_curves_figure`): PR curves at IoU 0.5 and averaged over IoU 0.50:0.95.

    One line per category (its AP in the legend) and a thick black line for all categories.
    ``class_names`` are in ``cocoeval.params.catIds`` order (default: the ground truth's names).
    """
    return save_figure(pr_curves_figure(cocoeval, class_names, title), out_path)
