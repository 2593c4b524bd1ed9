"""Evaluation: COCO box/mask AP (pycocotools) and semantic segmentation mIoU."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detkit.evaluation.coco import (
    ClassAP,
    CocoEvaluator,
    coco_metrics,
    evaluate_coco,
    format_per_class,
    masks_to_rle,
    per_class_ap,
)
from detkit.evaluation.semseg import ClassIoU, SemSegEvaluator

__all__ = [
    "ClassAP",
    "ClassIoU",
    "CocoEvaluator",
    "SemSegEvaluator",
    "build_evaluator",
    "coco_metrics",
    "evaluate_coco",
    "format_per_class",
    "masks_to_rle",
    "per_class_ap",
]


def _is_semantic(model: Mapping[str, Any], dataset: Any) -> bool:
    return (
        model.get("type") == "Segmentor"
        or "decode_head" in model
        or bool(getattr(dataset, "with_sem_seg", False))
        or getattr(dataset, "sem_seg_dir", None) is not None
    )


def _has_masks(model: Mapping[str, Any], dataset: Any) -> bool:
    head = model.get("head")
    head_type = head.get("type", "") if isinstance(head, Mapping) else ""
    return model.get("mask_head") is not None or bool(getattr(dataset, "with_masks", False)) or "Seg" in head_type


def build_evaluator(cfg: Mapping[str, Any], dataset: Any) -> CocoEvaluator | SemSegEvaluator:
    """Return the evaluator that suits the model in ``cfg`` and the validation ``dataset``.

    - ``SemSegEvaluator`` when the model is a ``Segmentor`` (or has a ``decode_head``) or the dataset
      carries semantic maps (``with_sem_seg`` / ``sem_seg_dir``); ``num_classes`` from
      ``model.num_classes`` or the dataset's class names (plus 'background' first when the dataset has
      ``sem_background``), ``ignore_index`` from ``model.ignore_index``
      or ``model.decode_head.ignore_index`` (default 255).
    - otherwise ``CocoEvaluator(dataset=dataset)`` with ``iou_types=('bbox', 'segm')`` when the model
      has a mask head (``model.mask_head`` not null, a one-stage ``head`` whose type contains 'Seg',
      e.g. a prototype-mask YOLO head) or the dataset was built ``with_masks``; ``('bbox',)`` otherwise.
    """
    model = cfg.get("model") or {}
    class_names = getattr(dataset, "class_names", None)
    if _is_semantic(model, dataset):
        if class_names is not None and getattr(dataset, "sem_background", False):
            class_names = ["background", *class_names]  # CocoDataset(sem_background=True) paints class 0
        num_classes = model.get("num_classes") or (len(class_names) if class_names else None)
        if not num_classes:
            raise ValueError("build_evaluator: set model.num_classes or use a dataset with class_names")
        decode_head = model.get("decode_head") if isinstance(model.get("decode_head"), Mapping) else {}
        ignore_index = model.get("ignore_index", decode_head.get("ignore_index", 255))
        names = class_names if class_names is not None and len(class_names) == num_classes else None
        return SemSegEvaluator(num_classes=num_classes, ignore_index=ignore_index, class_names=names)
    iou_types = ("bbox", "segm") if _has_masks(model, dataset) else ("bbox",)
    return CocoEvaluator(dataset=dataset, iou_types=iou_types)
