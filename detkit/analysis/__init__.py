"""Analysis of detection results: per-class / per-size AP, PR curves, confusion matrix, TIDE-style errors,
per-image errors. Every number comes from pycocotools' COCOeval, as ``detkit.evaluation`` reports it."""

from __future__ import annotations

from detkit.analysis.common import load_gt, load_results, run_cocoeval
from detkit.analysis.confusion import ConfusionResult, confusion_matrix, plot_confusion_matrix, write_confusion_csv
from detkit.analysis.errors import ERROR_TYPES, ErrorReport, error_breakdown, plot_errors
from detkit.analysis.per_class import ClassRow, format_table, per_class_table, size_table, write_per_class_csv
from detkit.analysis.per_image import draw_ranked_images, rank_images
from detkit.analysis.pr_curves import plot_pr_curves, pr_curves
from detkit.analysis.report import analyze, write_eval_report, write_evaluator_report

__all__ = [
    "ERROR_TYPES",
    "ClassRow",
    "ConfusionResult",
    "ErrorReport",
    "analyze",
    "confusion_matrix",
    "draw_ranked_images",
    "error_breakdown",
    "format_table",
    "load_gt",
    "load_results",
    "per_class_table",
    "plot_confusion_matrix",
    "plot_errors",
    "plot_pr_curves",
    "pr_curves",
    "rank_images",
    "run_cocoeval",
    "size_table",
    "write_confusion_csv",
    "write_eval_report",
    "write_evaluator_report",
    "write_per_class_csv",
]
