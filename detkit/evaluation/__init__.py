"""Evaluation: COCO box/mask AP (pycocotools), semantic segmentation mIoU, image classification top-k accuracy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detkit.evaluation.classification import ClsEvaluator
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
    "ClsEvaluator",
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


def _is_classifier(model: Mapping[str, Any]) -> bool:
    head = model.get("head")
    return model.get("type") == "Classifier" or (isinstance(head, Mapping) and head.get("type") == "ClsHead")


def _is_classification_data(dataset: Any) -> bool:
    """A dataset of whole-image labels (ImageFolderDataset, CocoCropsDataset): it has ``num_classes`` and
    one label per sample, and no COCO ground truth of its own."""
    return hasattr(dataset, "num_classes") and hasattr(dataset, "class_counts")


def _cls_evaluator(model: Mapping[str, Any], dataset: Any) -> ClsEvaluator:
    """ClsEvaluator of the classifier config ``model`` on ``dataset`` (its labels checked by ``check_gt``)."""
    class_names = getattr(dataset, "class_names", None)
    num_classes = model.get("num_classes") or (len(class_names) if class_names else None)
    if not num_classes:
        raise ValueError("build_evaluator: set model.num_classes or use a dataset with class_names")
    names = class_names if class_names is not None and len(class_names) == num_classes else None
    return ClsEvaluator(num_classes=int(num_classes), class_names=names, dataset=dataset)


def _has_masks(model: Mapping[str, Any], dataset: Any) -> bool:
    head = model.get("head")
    head_type = head.get("type", "") if isinstance(head, Mapping) else ""
    return model.get("mask_head") is not None or bool(getattr(dataset, "with_masks", False)) or "Seg" in head_type


def build_evaluator(cfg: Mapping[str, Any], dataset: Any) -> CocoEvaluator | SemSegEvaluator | ClsEvaluator:
    """Return the evaluator that suits the model in ``cfg`` and the validation ``dataset``.

    - ``ClsEvaluator`` when the model is a ``Classifier`` (or its ``head`` a ``ClsHead``): ``num_classes``
      from ``model.num_classes`` or the dataset's class names; its ``check_gt`` (run by the trainer's
      pre-flight) checks that the dataset gives one class per image.
    - ``SemSegEvaluator`` when the model is a ``Segmentor`` (or has a ``decode_head``) or the dataset
      carries semantic maps (``with_sem_seg`` / ``sem_seg_dir``); ``num_classes`` from
      ``model.num_classes`` or the dataset's class names (plus 'background' first when the dataset has
      ``sem_background``), ``ignore_index`` from ``model.ignore_index``
      or ``model.decode_head.ignore_index`` (default 255).
    - otherwise ``CocoEvaluator(dataset=dataset, max_dets=train.eval_max_dets)`` with ``iou_types=('bbox', 'segm')`` when the model
      has a mask head (``model.mask_head`` not null, a one-stage ``head`` whose type contains 'Seg',
      e.g. a prototype-mask YOLO head) or the dataset was built ``with_masks``; ``('bbox',)`` otherwise.
    """
    model = cfg.get("model") or {}
    if _is_classifier(model):
        return _cls_evaluator(model, dataset)
    if _is_classification_data(dataset):
        raise ValueError(
            f"data.val is a {type(dataset).__name__} (one class per image) but the model is a "
            f"{model.get('type', 'detector')}, which needs boxes (or masks) to be evaluated: give data.val a "
            "CocoDataset, or train a Classifier on this data"
        )
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
    max_dets = (cfg.get("train") or {}).get("eval_max_dets") or 100
    return CocoEvaluator(dataset=dataset, iou_types=iou_types, max_dets=max_dets)
