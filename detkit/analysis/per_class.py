"""Per-class and per-size AP tables from an accumulated COCOeval (``eval['precision']``, as pycocotools averages it)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from detkit.analysis.figures import write_csv
from detkit.evaluation.coco_metrics import AP_UNITS, format_ap, max_det_index, mean_valid, per_class_ap

__all__ = ["ClassRow", "format_table", "per_class_table", "size_table", "write_per_class_csv"]

SIZES = ("small", "medium", "large")


class ClassRow(NamedTuple):
    """One category: AP (IoU 0.50:0.95), AP50, AP75 and AP per object size; -1 where undefined."""

    name: str
    category_id: int
    num_gt: int
    AP: float
    AP50: float
    AP75: float
    APs: float
    APm: float
    APl: float


def per_class_table(cocoeval: Any, class_names: Mapping[int, str] | None = None) -> list[ClassRow]:
    """Per-category rows of an accumulated COCOeval (category id order).

    AP and AP50 are ``detkit.evaluation.per_class_ap``'s; AP75 and the size columns average the same
    ``eval['precision'][T, R, K, A, M]`` slices (maxDets 100) over their valid (> -1) entries, which is how
    pycocotools computes ``stats``.
    """
    p = cocoeval.params
    prec = np.asarray(cocoeval.eval["precision"])
    m = max_det_index(p)
    thr = np.asarray(p.iouThrs)
    t75 = np.where(np.isclose(thr, 0.75))[0]
    area = {lbl: i for i, lbl in enumerate(p.areaRngLbl)}
    rows = []
    for k, base in enumerate(per_class_ap(cocoeval, class_names)):
        sizes = [mean_valid(prec[:, :, k, area[s], m]) if s in area else -1.0 for s in SIZES]
        ap75 = mean_valid(prec[t75, :, k, area["all"], m]) if t75.size else -1.0
        rows.append(ClassRow(base.name, base.category_id, base.num_gt, base.AP, base.AP50, ap75, *sizes))
    return rows


def size_table(cocoeval: Any) -> dict[str, dict[str, float]]:
    """AP (0.50:0.95), AP50 and the number of non-crowd ground truths per object size (small/medium/large).

    AP equals pycocotools' ``APs`` / ``APm`` / ``APl``: the mean of the valid precision entries at that
    area range, over every category.
    """
    p = cocoeval.params
    prec = np.asarray(cocoeval.eval["precision"])
    m = max_det_index(p)
    t50 = np.where(np.isclose(np.asarray(p.iouThrs), 0.5))[0]
    gt = cocoeval.cocoGt
    anns = [
        a
        for a in gt.loadAnns(gt.getAnnIds(imgIds=list(p.imgIds), catIds=list(p.catIds)))
        if not (a.get("iscrowd", 0) or a.get("ignore", 0))
    ]
    out = {}
    for lbl, (lo, hi) in zip(p.areaRngLbl, p.areaRng):
        if lbl not in SIZES:
            continue
        a = list(p.areaRngLbl).index(lbl)
        out[lbl] = {
            "AP": mean_valid(prec[:, :, :, a, m]),
            "AP50": mean_valid(prec[t50, :, :, a, m]) if t50.size else -1.0,
            "num_gt": sum(1 for x in anns if lo <= x["area"] <= hi),
        }
    return out


def format_table(rows: Sequence[ClassRow], sizes: Mapping[str, Mapping[str, float]] | None = None) -> str:
    """The per-class rows (and the per-size summary) as plain text, AP in 0..1 (said in the title line),
    '-' where undefined."""
    width = max([5] + [len(r.name) for r in rows])
    cols = ("AP", "AP50", "AP75", "APs", "APm", "APl")
    lines = [f"per-class {AP_UNITS}"]
    lines.append(f"{'class':<{width}}  {'cat_id':>6}  {'num_gt':>6}  " + "  ".join(f"{c:>5}" for c in cols))
    for r in rows:
        vals = (r.AP, r.AP50, r.AP75, r.APs, r.APm, r.APl)
        lines.append(
            f"{r.name:<{width}}  {r.category_id:>6}  {r.num_gt:>6}  " + "  ".join(f"{format_ap(v):>5}" for v in vals)
        )
    if sizes:
        lines += ["", f"per-size {AP_UNITS}", f"{'size':<8}  {'num_gt':>6}  {'AP':>5}  {'AP50':>5}"]
        for s, d in sizes.items():
            lines.append(f"{s:<8}  {int(d['num_gt']):>6}  {format_ap(d['AP']):>5}  {format_ap(d['AP50']):>5}")
    return "\n".join(lines)


# CSV column names: AP values are fractions in 0..1 (-1 = undefined), said in the header
CSV_HEADER = tuple(f"{f} (0-1)" if f.startswith("AP") else f for f in ClassRow._fields)


def write_per_class_csv(rows: Sequence[ClassRow], path: str | os.PathLike) -> Path:
    """Write the rows as CSV; AP columns are fractions in 0..1 (-1 = undefined), headed ``AP (0-1)`` etc."""
    return write_csv(path, CSV_HEADER, [tuple(r) for r in rows])
