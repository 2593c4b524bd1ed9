"""Analysis of detection results: per-class / per-size AP, PR curves, confusion matrix, TIDE-style errors,
per-image errors. Every number comes from pycocotools' COCOeval, as ``detkit.evaluation`` reports it.
Classifiers: ``analyze_classification`` (a predictions.csv against class folders, ``ClsEvaluator``'s numbers).

The names below are imported on first use, so that ``detkit.analysis.logs`` (the curves of work directories,
``tools/plot_logs.py``) loads without torch.
"""

from __future__ import annotations

import importlib

# public name -> module of detkit.analysis that defines it
_LAZY = {
    "load_gt": "common",
    "load_results": "common",
    "run_cocoeval": "common",
    "analyze_classification": "classification",
    "confused_pairs": "classification",
    "read_predictions_csv": "classification",
    "ConfusionResult": "confusion",
    "confusion_matrix": "confusion",
    "plot_confusion_matrix": "confusion",
    "write_confusion_csv": "confusion",
    "ERROR_TYPES": "errors",
    "ErrorReport": "errors",
    "error_breakdown": "errors",
    "plot_errors": "errors",
    "ClassRow": "per_class",
    "format_table": "per_class",
    "per_class_table": "per_class",
    "size_table": "per_class",
    "write_per_class_csv": "per_class",
    "draw_ranked_images": "per_image",
    "rank_images": "per_image",
    "plot_pr_curves": "precision_recall",
    "pr_curves": "precision_recall",
    "analyze": "report",
    "analyze_loaded": "report",
    "write_eval_report": "report",
    "write_evaluator_report": "report",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    """Import ``name`` from its module on first use."""
    if name in _LAZY:
        value = getattr(importlib.import_module(f"detkit.analysis.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'detkit.analysis' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
