"""Per-category AP and AP50 of an accumulated COCOeval, computed as pycocotools computes the overall AP, as a table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np


class ClassAP(NamedTuple):
    """One row of the per-class table; AP values are -1 for a class without ground truth."""

    name: str
    category_id: int
    AP: float
    AP50: float
    num_gt: int


def mean_valid(values: np.ndarray) -> float:
    """Mean of the entries > -1 (pycocotools' "defined" precisions and recalls), -1.0 when there is none."""
    values = values[values > -1]
    return float(np.mean(values)) if values.size else -1.0


def max_det_index(params: Any) -> int:
    """Index of maxDets=100 in a COCOeval's params (the last maxDets when 100 is not one)."""
    dets = list(params.maxDets)
    return dets.index(100) if 100 in dets else len(dets) - 1


def per_class_ap(cocoeval: Any, class_names: Mapping[int, str] | None = None) -> list[ClassAP]:
    """Per-category AP and AP50 from an accumulated COCOeval, computed as pycocotools computes the overall AP.

    AP averages ``eval['precision'][:, :, k, area='all', maxDets=100]`` over its valid (> -1) entries,
    AP50 the same at IoU 0.5; a category without ground truth gets -1. ``num_gt`` counts the
    non-crowd ground-truth instances of the category in the evaluated images.
    """
    p = cocoeval.params
    precision = np.asarray(cocoeval.eval["precision"])  # [T, R, K, A, M]
    a = list(p.areaRngLbl).index("all")
    m = max_det_index(p)
    t50 = np.where(np.asarray(p.iouThrs) == 0.5)[0]
    gt = cocoeval.cocoGt
    num_gt: dict[int, int] = {}
    for ann in gt.loadAnns(gt.getAnnIds(imgIds=list(p.imgIds))):
        if not ann.get("iscrowd", 0):
            num_gt[ann["category_id"]] = num_gt.get(ann["category_id"], 0) + 1
    rows = []
    for k, cat_id in enumerate(p.catIds):
        cat_id = int(cat_id)
        name = (class_names or {}).get(cat_id) or gt.cats[cat_id].get("name", str(cat_id))
        ap, ap50 = mean_valid(precision[:, :, k, a, m]), mean_valid(precision[t50, :, k, a, m])
        rows.append(ClassAP(name, cat_id, ap, ap50, num_gt.get(cat_id, 0)))
    return rows


AP_UNITS = "AP in 0..1 (COCO), '-' = no ground truth"


def format_ap(value: float) -> str:
    """An AP value in 0..1 as text with 3 decimals, '-' where undefined (-1)."""
    return "-" if value < 0 else f"{value:.3f}"


def format_per_class(rows: Sequence[ClassAP], title: str = "") -> str:
    """Return the per-class rows as a plain-text table (AP in 0..1, said in its first line; '-' where undefined)."""
    width = max([len("class")] + [len(r.name) for r in rows])
    lines = [f"{title} ({AP_UNITS})" if title else f"per-class {AP_UNITS}"]
    lines.append(f"{'class':<{width}}  {'cat_id':>6}  {'AP':>6}  {'AP50':>6}  {'num_gt':>6}")
    lines += [
        f"{r.name:<{width}}  {r.category_id:>6}  {format_ap(r.AP):>6}  {format_ap(r.AP50):>6}  {r.num_gt:>6}"
        for r in rows
    ]
    return "\n".join(lines)
