"""``CocoEvaluator``: detector predictions -> COCO results, batch by batch, scored with COCOeval over every rank.

The functional metrics (``coco_metrics``, ``evaluate_coco``, ``per_class_ap``, ``prediction_to_coco``, ...)
live in :mod:`detkit.evaluation.coco_metrics` and are re-exported here.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist

from detkit.evaluation.checks import predicted_images
from detkit.evaluation.coco_metrics import (  # noqa: F401
    IOU_TYPES,
    STAT_NAMES,
    ClassAP,
    CocoEvalOutput,
    check_gt,
    coco_metrics,
    crowded_note,
    evaluate_coco,
    evaluate_coco_gt,
    faster_coco_eval_available,
    format_per_class,
    label_list,
    load_coco_gt,
    masks_to_rle,
    per_class_ap,
    prediction_to_coco,
    resolve_backend,
)

__all__ = [
    "IOU_TYPES",
    "STAT_NAMES",
    "ClassAP",
    "CocoEvalOutput",
    "CocoEvaluator",
    "coco_metrics",
    "evaluate_coco",
    "faster_coco_eval_available",
    "format_per_class",
    "load_coco_gt",
    "masks_to_rle",
    "per_class_ap",
    "prediction_to_coco",
]


def _dist_on() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class CocoEvaluator:
    """Collect detector predictions as COCO results and score them with COCOeval.

    Args:
        ann_file: ground-truth COCO json (used when ``dataset`` is not given).
        dataset: a ``CocoDataset`` (``.coco``, ``.label_to_cat_id``, ``.class_names``).
        iou_types: ``('bbox',)`` or ``('bbox', 'segm')``.
        label_to_cat_id: contiguous label -> COCO category id (list or dict); default: the dataset's
            map, else the sorted category ids of the annotation file.
        class_names: names per label; default: the dataset's, else the categories' names.
        backend: see ``evaluate_coco``.
        verbose: print pycocotools' summary in ``compute()``.
        max_dets: detections per image that AP counts (COCO's 100; ``train.eval_max_dets``, ``eval --max-dets``);
            ``compute()`` warns once when an evaluated image has more objects than that.
    Attributes:
        results: the COCO results list (every rank's after ``compute()``), ready for predictions.json.
        per_class: ``{iou_type: [ClassAP, ...]}`` of the last ``compute()``.
        logs: ``{iou_type: text}``, pycocotools' captured output of the last ``compute()``.
        last_results: the COCO results scored by the last ``compute()`` (every rank's), None before.
        last_image_ids: the ids of every image processed for the last ``compute()`` (every rank's, with
            or without detections), None before.
        coco_gt: the private ground-truth COCO copy the evaluator scores against (read-only).
        metric_names: the keys ``compute()`` returns, ``{iou_type}/{name}`` for each of ``STAT_NAMES``.
    """

    def __init__(
        self,
        ann_file: str | os.PathLike | None = None,
        dataset: Any = None,
        iou_types: Sequence[str] = ("bbox",),
        label_to_cat_id: Sequence[int] | Mapping[int, int] | None = None,
        class_names: Sequence[str] | None = None,
        backend: str = "auto",
        verbose: bool = False,
        max_dets: int = 100,
    ):
        if dataset is None and ann_file is None:
            raise ValueError("CocoEvaluator needs ann_file or dataset")
        bad = [t for t in iou_types if t not in IOU_TYPES]
        if bad or not iou_types:
            raise ValueError(f"iou_types must be a non-empty subset of {IOU_TYPES}, got {tuple(iou_types)}")
        self.iou_types = tuple(iou_types)
        self.metric_names = [f"{t}/{n}" for t in self.iou_types for n in STAT_NAMES]
        self.backend = resolve_backend(backend)
        self.verbose = verbose
        if isinstance(max_dets, bool) or not isinstance(max_dets, int) or max_dets < 1:
            raise ValueError(f"max_dets must be an integer >= 1, got {max_dets!r}")
        self.max_dets = max_dets
        self._gt_source = getattr(dataset, "coco", None) if dataset is not None else None
        if self._gt_source is None:
            self._gt_source = ann_file if ann_file is not None else getattr(dataset, "ann_file", None)
        if self._gt_source is None:
            raise ValueError("CocoEvaluator: the dataset has neither .coco nor .ann_file; pass ann_file")
        self._gt_name = str(ann_file or getattr(dataset, "ann_file", None) or "the ground truth")
        self._gt: Any = None  # private COCO copy, built on first use
        cats = self._categories()
        if label_to_cat_id is None:
            label_to_cat_id = getattr(dataset, "label_to_cat_id", None)
        self.label_to_cat_id = label_list(label_to_cat_id if label_to_cat_id is not None else sorted(cats))
        if class_names is None:
            class_names = getattr(dataset, "class_names", None)
        if class_names is None:
            class_names = [cats.get(c, str(c)) for c in self.label_to_cat_id]
        if len(class_names) != len(self.label_to_cat_id):
            raise ValueError(f"{len(class_names)} class names for {len(self.label_to_cat_id)} labels")
        self.class_names = list(class_names)
        self.reset()

    def _categories(self) -> dict[int, str]:
        src = self._gt_source
        if isinstance(src, (str, os.PathLike)):
            self._gt = load_coco_gt(src, self.backend, self.iou_types)
            src = self._gt
        data = src.dataset if hasattr(src, "dataset") else src
        return {int(c["id"]): c.get("name", str(c["id"])) for c in data.get("categories", [])}

    def reset(self) -> None:
        """Forget every processed image."""
        self._per_image: dict[int, list[dict]] = {}
        self.per_class: dict[str, list[ClassAP]] = {}
        self.metrics: dict[str, float] = {}
        self.logs: dict[str, str] = {}
        self.last_results: list[dict] | None = None
        self.last_image_ids: list[int] | None = None

    def check_gt(self) -> None:
        """Raise ``ValueError`` now (not at the first ``compute()``) when the ground truth lacks what COCOeval
        needs: ``area`` of every annotation, its ``bbox`` / ``segmentation`` for the IoU types evaluated."""
        src = self._gt if self._gt is not None else self._gt_source
        data = src.dataset if hasattr(src, "dataset") else src
        if isinstance(data, dict):
            check_gt(data, self.iou_types, self._gt_name)

    @property
    def coco_gt(self) -> Any:
        """The private ground-truth COCO object (loaded on first use); do not modify it."""
        if self._gt is None:
            self._gt = load_coco_gt(self._gt_source, self.backend, self.iou_types)
        return self._gt

    @property
    def results(self) -> list[dict]:
        """COCO results of the processed images, in image id order."""
        return [r for i in sorted(self._per_image) for r in self._per_image[i]]

    def process(self, batch: Mapping[str, Any], preds: Sequence[Mapping[str, torch.Tensor]]) -> None:
        """Convert one batch of predictions into COCO results.

        Args:
            batch: needs ``image_ids`` (list[int], original COCO ids).
            preds: per image ``boxes`` float [N,4] xyxy (original pixels), ``scores`` [N], ``labels``
                int64 [N] in 0..C-1, and ``masks`` bool/uint8 [N,H0,W0] when 'segm' is evaluated.
        """
        image_ids = batch["image_ids"]
        if len(image_ids) != len(preds):
            raise ValueError(f"batch has {len(image_ids)} image_ids but {len(preds)} predictions")
        for image_id, pred in zip(image_ids, preds):
            image_id = int(image_id)
            if image_id in self._per_image:  # a sampler repeated the image: keep the first
                continue
            self._per_image[image_id] = self._to_coco(image_id, pred)

    def _to_coco(self, image_id: int, pred: Mapping[str, torch.Tensor]) -> list[dict]:
        if "segm" in self.iou_types and pred.get("masks") is None:
            raise ValueError(
                f"image {image_id}: iou_types includes 'segm' but the prediction has no "
                f"'masks'; use iou_types=('bbox',) or a model with a mask head"
            )
        return prediction_to_coco(image_id, pred, self.label_to_cat_id, with_masks="segm" in self.iou_types)

    def _gather(self) -> None:
        if not _dist_on():
            return
        parts: list = [None] * dist.get_world_size()
        dist.all_gather_object(parts, self._per_image)
        merged: dict[int, list[dict]] = {}
        for part in parts:  # rank order; the first copy of a repeated image wins
            for image_id, res in part.items():
                merged.setdefault(image_id, res)
        self._per_image = merged

    def compute(self) -> dict[str, float]:
        """Score every processed image (on rank 0; other ranks receive the same dict)."""
        self._gather()
        out = [None, None, None]
        if not _dist_on() or dist.get_rank() == 0:
            out = self._evaluate()
        if _dist_on():
            dist.broadcast_object_list(out, src=0)
        self.metrics, self.per_class, self.logs = out
        self.last_results = self.results  # kept for reports (detkit.analysis.write_evaluator_report)
        self.last_image_ids = sorted(self._per_image)  # images without detections have no result record
        return dict(self.metrics)

    def _evaluate(self) -> list:
        metrics: dict[str, float] = {}
        per_class: dict[str, list[ClassAP]] = {}
        logs: dict[str, str] = {}
        if not self._per_image:
            warnings.warn("CocoEvaluator.compute(): no image was processed; every metric is 0", stacklevel=3)
            return [dict.fromkeys(self.metric_names, 0.0), {}, {}]
        if self._gt is None:
            self._gt = load_coco_gt(self._gt_source, self.backend, self.iou_types)
        names = dict(zip(self.label_to_cat_id, self.class_names))
        results = self.results
        self._warn_crowded()
        for t in self.iou_types:
            o = evaluate_coco_gt(self._gt, results, t, self._per_image, self.backend, self.verbose, self.max_dets)
            metrics.update(o.metrics)
            per_class[t] = per_class_ap(o.cocoeval, names)
            logs[t] = o.log
        return [metrics, per_class, logs]

    def _warn_crowded(self) -> None:
        """Warn once when an evaluated image holds more objects than AP counts detections (``max_dets``)."""
        if getattr(self, "_told_crowded", False):  # once per evaluator, not at every evaluation of a training
            return
        note = crowded_note(self._gt.dataset, self.max_dets, self._per_image)
        if note:
            self._told_crowded = True
            warnings.warn(note + "; raise it with train.eval_max_dets or eval --max-dets", stacklevel=4)

    def summary(self) -> str:
        """Return the last ``compute()`` as text: pycocotools' summary lines and the per-class tables."""
        if not self.metrics:
            return "CocoEvaluator: nothing computed yet"
        parts = []
        for t in self.iou_types:
            parts.append(f"{t}:")
            parts += [ln for ln in self.logs.get(t, "").splitlines() if ln.lstrip().startswith("Average")]
            if t in self.per_class:
                parts.append(format_per_class(self.per_class[t]))
        return "\n".join(parts)

    def write_report(self, out_dir: str | os.PathLike) -> list:
        """Write PR curves, confusion matrix and per-class CSV of the last ``compute()`` into ``out_dir``.

        Every processed image counts as predicted on, so the coverage warning (``checks.coverage_mismatch``)
        comes only when images were not predicted on, not when the model found nothing in them.
        """
        from detkit.analysis.report import write_evaluator_report  # lazy: analysis imports evaluation

        with predicted_images(self.last_image_ids or ()):
            return write_evaluator_report(self, out_dir)
