"""One-call analyses: ``analyze`` (everything, for tools/analyze.py) and ``write_eval_report`` (training hook)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detkit.analysis.common import category_names, load_gt, load_results, run_cocoeval
from detkit.analysis.confusion import confusion_matrix, plot_confusion_matrix, write_confusion_csv
from detkit.analysis.errors import error_breakdown, plot_errors, write_errors_csv
from detkit.analysis.outputs import recorded_run
from detkit.analysis.per_class import format_table, per_class_table, size_table, write_per_class_csv
from detkit.analysis.per_image import draw_ranked_images, planned_drawings, write_per_image_csv
from detkit.analysis.precision_recall import plot_pr_curves
from detkit.evaluation.coco_metrics import STAT_NAMES, summarize_cocoeval
from detkit.utils.files import atomic_write

__all__ = ["OUTPUTS", "analyze", "analyze_loaded", "write_eval_report", "write_evaluator_report"]

# the files that analyze writes into its out_dir (besides the worst/ and best/ drawings)
OUTPUTS = (
    "per_class.csv",
    "pr_curves.png",
    "confusion_matrix.png",
    "confusion_matrix.csv",
    "per_image.csv",
    "errors.png",
    "errors.csv",
    "summary.json",
)


def _metrics(cocoeval: Any, iou_type: str) -> dict[str, float]:
    summarize_cocoeval(cocoeval)
    return {f"{iou_type}/{n}": float(v) for n, v in zip(STAT_NAMES, cocoeval.stats)}


def write_eval_report(
    work_dir: str | os.PathLike,
    gt: Any,
    results: str | os.PathLike | Sequence[dict],
    class_names: Sequence[str] | None = None,
    iou_type: str = "bbox",
    score_thr: float = 0.3,
    iou_thr: float = 0.5,
) -> dict[str, Any]:
    """Write ``pr_curves.png``, ``confusion_matrix.png`` and ``confusion_matrix.csv`` into ``work_dir``.

    Args:
        gt: ground-truth COCO object, dict or json path (never modified); results: COCO results (list
            or json path); class_names: one per category in id order (default: the categories' names).
    Returns:
        ``{'metrics': pycocotools' metric dict of this evaluation, 'confusion': ConfusionResult,
        'files': [paths]}``.
    """
    work_dir = Path(work_dir)
    coco_gt = load_gt(gt, iou_type)
    res = load_results(results, coco_gt, iou_type)
    _, names = category_names(coco_gt, class_names)
    E = run_cocoeval(coco_gt, res, iou_type)
    files = [plot_pr_curves(E, work_dir / "pr_curves.png", names)]
    cm = confusion_matrix(coco_gt, res, iou_type, score_thr, iou_thr, names)
    files += [
        plot_confusion_matrix(cm, work_dir / "confusion_matrix.png"),
        write_confusion_csv(cm, work_dir / "confusion_matrix.csv"),
    ]
    return {"metrics": _metrics(E, iou_type), "confusion": cm, "files": files}


def write_evaluator_report(evaluator: Any, work_dir: str | os.PathLike) -> list[Path]:
    """``write_eval_report`` for the last ``compute()`` of a ``CocoEvaluator`` (bbox if evaluated, else segm).

    Returns the files written; [] for an evaluator without COCO ground truth and results (e.g. mIoU).
    """
    gt, results = getattr(evaluator, "coco_gt", None), getattr(evaluator, "last_results", None)
    if gt is None or results is None:
        return []
    types = tuple(getattr(evaluator, "iou_types", ("bbox",)))
    iou_type = "bbox" if "bbox" in types else types[0]
    return write_eval_report(work_dir, gt, results, getattr(evaluator, "class_names", None), iou_type)["files"]


def analyze(gt: Any, results: str | os.PathLike | Sequence[dict], out_dir: str | os.PathLike, **options) -> dict:
    """Run every analysis of ``results`` against ``gt`` and write the outputs into ``out_dir``.

    ``gt``: ground-truth json path, dict or COCO object (never modified); ``results``: COCO results (json
    path or list). Predictions whose categories or images disagree with the ground truth give a
    :class:`~detkit.evaluation.checks.CategoryMismatchWarning` first (see ``load_results``). ``options`` are
    the keyword arguments of :func:`analyze_loaded` (``iou_type``, ``score_thr``, ``img_dir``, ``tide``, ...).
    """
    iou_type = options.get("iou_type", "bbox")
    coco_gt = load_gt(gt, iou_type)
    return analyze_loaded(coco_gt, load_results(results, coco_gt, iou_type), out_dir, **options)


def analyze_loaded(
    coco_gt: Any,
    res: Sequence[dict],
    out_dir: str | os.PathLike,
    iou_type: str = "bbox",
    score_thr: float = 0.3,
    iou_thr: float = 0.5,
    img_dir: str | os.PathLike | None = None,
    num_images: int = 8,
    class_names: Sequence[str] | None = None,
    tide: bool = True,
    progress: bool = True,
    max_dets: int = 100,
) -> dict[str, Any]:
    """``analyze`` of a private ground truth (``load_gt``) and checked results (``load_results``).

    ``max_dets``: detections per image that AP counts (pycocotools' maxDets, COCO's 100), for every table.

    Writes per_class.csv, pr_curves.png, confusion_matrix.png/.csv, errors.png/.csv (``tide``),
    per_image.csv, summary.json and, with ``img_dir``, worst/ and best/ drawings (docs/analysis.md), after
    removing the outputs that an earlier run recorded in ``out_dir`` (``.analyze_outputs.json``; nothing else:
    errors.csv of a run with ``tide`` is not left beside one without). A file of the user's with the name of an
    output is a :class:`~detkit.analysis.outputs.ForeignOutputError`, before anything is written. ``progress`` shows tqdm bars (on a terminal only) for the error breakdown and the drawings.
    Returns a dict with ``metrics``, ``per_class``, ``sizes``, ``confusion``, ``errors``, ``table`` (text)
    and ``files``.
    """
    cat_ids, names = category_names(coco_gt, class_names)
    E = run_cocoeval(coco_gt, res, iou_type, max_dets=max_dets)
    metrics = _metrics(E, iou_type)
    rows = per_class_table(E, dict(zip(cat_ids, names)))
    sizes = size_table(E)
    cm = confusion_matrix(coco_gt, res, iou_type, score_thr, iou_thr, names)
    planned = [name for name in OUTPUTS if tide or not name.startswith("errors.")]
    planned += planned_drawings(cm, num_images) if img_dir is not None else []
    with recorded_run(out_dir, planned, "detection") as out:  # refuses to replace the user's files
        files = [write_per_class_csv(rows, out / "per_class.csv"), plot_pr_curves(E, out / "pr_curves.png", names)]
        files += [
            plot_confusion_matrix(cm, out / "confusion_matrix.png"),
            write_confusion_csv(cm, out / "confusion_matrix.csv"),
            write_per_image_csv(cm, coco_gt, out / "per_image.csv"),
        ]
        errors = None
        if tide:
            errors = error_breakdown(coco_gt, res, iou_type, iou_thr, progress=progress, max_dets=max_dets)
            files += [plot_errors(errors, out / "errors.png"), write_errors_csv(errors, out / "errors.csv")]
        if img_dir is not None:
            drawn = draw_ranked_images(cm, coco_gt, img_dir, out, num_images, iou_type, progress)
            files += [p for group in drawn.values() for p in group]
        text = json.dumps(_summary(iou_type, coco_gt, res, metrics, sizes, rows, cm, errors), indent=2)
        atomic_write(out / "summary.json", lambda f: f.write(text.encode()))
        files.append(out / "summary.json")
    return {
        "metrics": metrics,
        "per_class": rows,
        "sizes": sizes,
        "confusion": cm,
        "errors": errors,
        "table": format_table(rows, sizes),
        "files": files,
    }


def _summary(iou_type: str, coco_gt: Any, res: Sequence[dict], metrics, sizes, rows, cm, errors) -> dict:
    """The content of summary.json (AP values in 0..1, as every detkit metric)."""
    return {
        "iou_type": iou_type,
        "ap_units": "0..1",
        "num_images": len(coco_gt.getImgIds()),
        "num_predictions": len(res),
        "metrics": metrics,
        "sizes": sizes,
        "per_class": [r._asdict() for r in rows],
        "confusion": {
            "score_thr": cm.score_thr,
            "iou_thr": cm.iou_thr,
            "num_gt": cm.num_gt,
            "num_unmatched_predictions": cm.num_unmatched_predictions,
            "num_ignored_predictions": cm.num_ignored_predictions,
        },
        "errors": None
        if errors is None
        else {
            "iou_thr": errors.iou_thr,
            "bg_thr": errors.bg_thr,
            "AP": errors.ap,
            "counts": errors.counts,
            "delta_AP": errors.delta_ap,
        },
    }
