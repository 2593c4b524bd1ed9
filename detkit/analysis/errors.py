"""Error breakdown in the spirit of TIDE (Bolya et al., ECCV 2020): what each error type costs in AP.

At one IoU threshold ``t_f`` (default 0.5) pycocotools decides the true and false positives (its own
``evalImgs`` matching: maxDets 100, area 'all', crowd regions ignored). Each false positive ``d`` of class
``c``, best score first, gets the first type that applies, with ``t_b`` = 0.1 the background threshold:

- ``localization``: its best IoU with a ground truth of class ``c`` is in ``[t_b, t_f)``;
- ``classification``: its best IoU with a ground truth of another class is ``>= t_f``;
- ``duplicate``: its best IoU with a ground truth of class ``c`` is ``>= t_f`` (that ground truth was
  already taken by a higher-scoring detection);
- ``both`` (class and box wrong): its best IoU with another class is in ``[t_b, t_f)``;
- ``background``: every IoU is below ``t_b``.

``missed``: a ground truth no detection found and that no classification or localisation error targets.

Each type is fixed alone in a copy of the inputs, then pycocotools runs again; ``delta AP`` is the
fixed AP minus the base AP (AP at ``t_f``, area all, maxDets 100). Fixes, as TIDE does: a classification
(localisation) error takes its target's class (box / mask) unless the target is already found, in
which case it is removed; duplicate, both and background errors are removed; missed ground truths are
removed from the ground truth. The oracles ``false_positives`` (remove every false positive) and
``false_negatives`` (remove every unfound ground truth) bound what is left to gain.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detkit.analysis.common import iou_matrix, is_ignored_gt, load_gt, run_cocoeval
from detkit.analysis.figures import pyplot, save_figure, write_csv
from detkit.evaluation.coco_metrics import max_det_index, mean_valid

__all__ = [
    "ERROR_TYPES",
    "ORACLES",
    "ErrorReport",
    "classify_errors",
    "error_breakdown",
    "errors_figure",
    "plot_errors",
    "write_errors_csv",
]

ERROR_TYPES = ("classification", "localization", "both", "duplicate", "background", "missed")
ORACLES = ("false_positives", "false_negatives")


@dataclass
class ErrorReport:
    """Counts and delta AP per error type; ``errors`` lists (type, result index or gt id, target gt id)."""

    iou_thr: float
    bg_thr: float
    ap: float
    counts: dict[str, int]
    delta_ap: dict[str, float]
    errors: list[tuple[str, int, int]] = field(default_factory=list)


def _ap(cocoeval: Any) -> float:
    """Mean of the valid precision entries at area 'all', maxDets 100 (pycocotools' AP)."""
    p = cocoeval.params
    prec = np.asarray(cocoeval.eval["precision"])
    return mean_valid(prec[:, :, :, list(p.areaRngLbl).index("all"), max_det_index(p)])


def classify_errors(
    cocoeval: Any, results: Sequence[dict], coco_gt: Any, iou_type: str = "bbox", bg_thr: float = 0.1
) -> tuple[list[tuple[str, int, int]], set[int], set[int]]:
    """Sort the false positives and misses of an evaluated single-threshold COCOeval into TIDE types.

    Args:
        cocoeval: evaluated COCOeval of ``results`` with one IoU threshold (``run_cocoeval(..., iou_thrs=[t])``);
            its detection ids are ``index + 1`` in ``results`` (pycocotools' loadRes numbering).
    Returns:
        ``(errors, found_gt_ids, unfound_gt_ids)``; errors are ``(type, result index, target gt id or -1)``,
        missed ones ``('missed', -1, gt id)``.
    """
    p = cocoeval.params
    t_f = float(p.iouThrs[0])
    all_rng = p.areaRng[list(p.areaRngLbl).index("all")]
    fps: dict[int, list[int]] = {}  # image -> result indices of false positives
    found, unfound = set(), set()
    for e in cocoeval.evalImgs:
        if e is None or e["aRng"] != all_rng:
            continue
        for j, did in enumerate(e["dtIds"]):
            if not e["dtMatches"][0, j] and not e["dtIgnore"][0, j]:
                fps.setdefault(e["image_id"], []).append(did - 1)
        for j, gid in enumerate(e["gtIds"]):
            if not e["gtIgnore"][j]:
                (found if e["gtMatches"][0, j] else unfound).add(gid)
    errors, targeted = [], set()
    for img_id, idx in fps.items():
        idx = sorted(idx, key=lambda i: -results[i]["score"])
        gts = [a for a in coco_gt.imgToAnns.get(img_id, []) if not is_ignored_gt(a) and a["category_id"] in p.catIds]
        iou = iou_matrix([results[i] for i in idx], gts, iou_type, coco_gt)
        for row, i in enumerate(idx):
            same = np.array([g["category_id"] == results[i]["category_id"] for g in gts], bool)
            kind, target = _error_type(iou[row] if gts else np.zeros(0), same, t_f, bg_thr)
            gid = gts[target]["id"] if target >= 0 else -1
            if kind in ("classification", "localization"):
                targeted.add(gid)
            errors.append((kind, i, gid))
    errors += [("missed", -1, gid) for gid in sorted(unfound - targeted)]
    return errors, found, unfound


def _error_type(iou: np.ndarray, same: np.ndarray, t_f: float, t_b: float) -> tuple[str, int]:
    """(type, index of the target ground truth or -1) of one false positive, by TIDE's order."""
    s = np.where(same, iou, -1.0)
    o = np.where(~same, iou, -1.0)
    s_best = float(s.max()) if s.size else -1.0
    o_best = float(o.max()) if o.size else -1.0
    if t_b <= s_best < t_f:
        return "localization", int(s.argmax())
    if o_best >= t_f:
        return "classification", int(o.argmax())
    if s_best >= t_f:
        return "duplicate", int(s.argmax())
    if t_b <= o_best < t_f:
        return "both", int(o.argmax())
    return "background", -1


def _fix(
    kind: str, errors: list, results: list[dict], coco_gt: Any, found: set[int], unfound: set[int], iou_type: str
) -> tuple[list[dict], Any]:
    """Inputs with the errors of ``kind`` (or an oracle) fixed: (results, ground truth)."""
    gt = coco_gt
    if kind in ("missed", "false_negatives"):
        drop = unfound if kind == "false_negatives" else {g for k, _, g in errors if k == "missed"}
        data = dict(coco_gt.dataset)
        data["annotations"] = [a for a in coco_gt.dataset["annotations"] if a["id"] not in drop]
        return list(results), load_gt(data, iou_type)
    remove, change = set(), {}
    used = set(found)
    for k, i, g in sorted((e for e in errors if e[0] != "missed"), key=lambda e: -results[e[1]]["score"]):
        if kind == "false_positives" or (k == kind and kind in ("duplicate", "both", "background")):
            remove.add(i)
        elif k == kind:  # classification / localization: take the target's class / box unless it is found
            if g in used:
                remove.add(i)
            else:
                used.add(g)
                ann = gt.anns[g]
                rec = dict(results[i])
                if kind == "classification":
                    rec["category_id"] = ann["category_id"]
                elif iou_type == "bbox":
                    rec["bbox"] = list(ann["bbox"])
                else:
                    rle = gt.annToRLE(ann)
                    rec["segmentation"] = {
                        "size": list(rle["size"]),
                        "counts": rle["counts"].decode("ascii") if isinstance(rle["counts"], bytes) else rle["counts"],
                    }
                change[i] = rec
    return [change.get(i, r) for i, r in enumerate(results) if i not in remove], gt


def error_breakdown(
    coco_gt: Any,
    results: Sequence[dict],
    iou_type: str = "bbox",
    iou_thr: float = 0.5,
    bg_thr: float = 0.1,
    progress: bool = True,
    max_dets: int = 100,
) -> ErrorReport:
    """Count the TIDE error types of ``results`` and the AP gained by fixing each (see the module doc); AP over
    ``max_dets`` detections per image (pycocotools' maxDets, COCO's 100).

    pycocotools runs once, then once per error type present (up to 9 runs, each as long as an evaluation):
    with ``progress`` a tqdm bar with ETA counts them on a terminal (never into a file or pipe).

    Args:
        coco_gt: private ground-truth COCO (``load_gt``); results: validated results (``load_results``).
    """
    from tqdm import tqdm

    results = list(results)
    with tqdm(
        total=1 + len(ERROR_TYPES + ORACLES), desc="error breakdown", unit="eval", disable=None if progress else True
    ) as bar:
        base = run_cocoeval(coco_gt, results, iou_type, iou_thrs=[iou_thr], max_dets=max_dets)
        bar.update()
        ap = _ap(base)
        errors, found, unfound = classify_errors(base, results, coco_gt, iou_type, bg_thr)
        counts = {k: sum(1 for e in errors if e[0] == k) for k in ERROR_TYPES}
        counts["false_positives"] = sum(counts[k] for k in ERROR_TYPES if k != "missed")
        counts["false_negatives"] = len(unfound)
        bar.total = 1 + sum(1 for k in ERROR_TYPES + ORACLES if counts[k])
        bar.refresh()
        delta = {}
        for kind in ERROR_TYPES + ORACLES:
            if not counts[kind]:
                delta[kind] = 0.0
                continue
            bar.set_postfix_str(kind)
            res, gt = _fix(kind, errors, results, coco_gt, found, unfound, iou_type)
            fixed = _ap(run_cocoeval(gt, res, iou_type, iou_thrs=[iou_thr], max_dets=max_dets))
            delta[kind] = (fixed - ap) if fixed >= 0 and ap >= 0 else 0.0
            bar.update()
    return ErrorReport(iou_thr, bg_thr, ap, counts, delta, errors)


def write_errors_csv(report: ErrorReport, path: str | os.PathLike) -> Path:
    """CSV: error type, count, AP gained if fixed at the report's IoU threshold (a fraction in 0..1)."""
    rows = [(k, report.counts[k], round(report.delta_ap[k], 6)) for k in ERROR_TYPES + ORACLES]
    return write_csv(path, ("error", "count", f"delta_AP@{report.iou_thr:g} (0-1)"), rows)


def errors_figure(report: ErrorReport):
    """The bar chart of ``plot_errors`` as a matplotlib figure: one bar per error type and oracle, its height
    the AP gained if fixed in percentage points, its count above it."""
    plt = pyplot()
    kinds = list(ERROR_TYPES) + list(ORACLES)
    vals = [100 * report.delta_ap[k] for k in kinds]
    colors = ["#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#7f7f7f", "#1f77b4", "#bcbd22", "#17becf"]
    fig, ax = plt.subplots(figsize=(9, 4.6))
    bars = ax.bar(range(len(kinds)), vals, color=colors)
    for b, k in zip(bars, kinds):
        ax.annotate(
            f"{b.get_height():.1f}\n(n={report.counts[k]})",
            (b.get_x() + b.get_width() / 2, b.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.axvline(len(ERROR_TYPES) - 0.5, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(kinds)), [k.replace("_", " ") for k in kinds], rotation=20)
    ax.set_ylabel(f"AP{100 * report.iou_thr:.0f} gained if fixed (percentage points)")
    ax.set_ylim(0, max(vals + [1.0]) * 1.25)
    ax.set_title(
        f"Error breakdown (TIDE-style) at IoU {report.iou_thr:g}: AP{100 * report.iou_thr:.0f} = "
        f"{100 * max(report.ap, 0):.1f} %",
        fontsize=10,
    )
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_errors(report: ErrorReport, out_path: str | os.PathLike) -> Path:
    """Write :func:`errors_figure` (delta AP per error type in percentage points, counts on the bars)."""
    return save_figure(errors_figure(report), out_path)
