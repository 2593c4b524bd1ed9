"""Image classification metrics: top-1 / top-5 accuracy, per-class precision / recall / F1, confusion matrix."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.distributed as dist

METRIC_NAMES = ("cls/top1", "cls/top5", "cls/mean_acc", "cls/macro_f1")
logger = logging.getLogger("detkit")


class ClassScores(NamedTuple):
    """One row of the per-class table (values in 0..1, nan where undefined: see ``ClsEvaluator``)."""

    name: str
    label: int
    accuracy: float  # = recall: share of the class's images predicted as the class
    precision: float
    recall: float
    f1: float
    support: int  # images of the class
    predicted: int  # images predicted as the class


def _dist_on() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` element-wise, nan where ``den`` is 0."""
    out = np.full(num.shape, math.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _fraction(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.3f}"


def _nanmean(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else math.nan


class ClsEvaluator:
    """Score class predictions against each image's label.

    ``cls/top1`` / ``cls/top5``: share of images whose class is the most likely one / among the ``min(5, C)``
    most likely ones (by ``scores``). ``cls/mean_acc``: per-class accuracy averaged over the classes present
    in the ground truth (balanced accuracy); ``cls/macro_f1``: F1 averaged over the same classes. Per class
    (``per_class``): accuracy = recall = TP / images of the class, precision = TP / images predicted as the
    class (nan when none is), F1 their harmonic mean (0 when both are 0). The confusion matrix counts images:
    rows the true class, columns the predicted (top-1) class. Values are in 0..1.

    Args:
        num_classes: C. class_names: C names (default: the label numbers).
        dataset: the validation dataset, for :meth:`check_gt` (optional; ``process`` reads the batches).
    Attributes after ``compute()``: ``metrics``, ``per_class`` (:class:`ClassScores` rows), ``confusion``
    int64 [C,C], ``records``: per image ``(image_id, true label, predicted label, probability of the true
    class)`` (for the worst images).
    """

    metric_names = METRIC_NAMES

    def __init__(self, num_classes: int, class_names: Sequence[str] | None = None, dataset: Any = None):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class_names for {num_classes} classes")
        self.num_classes = int(num_classes)
        self.class_names = (
            [str(n) for n in class_names] if class_names is not None else [str(i) for i in range(num_classes)]
        )
        self.dataset = dataset
        self.reset()

    def check_gt(self) -> None:
        """Check the validation dataset before training (the trainer's pre-flight runs it): one class label per
        image (``labels`` int64 [N], as ImageFolderDataset and CocoCropsDataset give), within 0..C-1, and the
        same number of classes as the model. Classes without a validation image are only logged (a WARNING:
        their accuracy is undefined, '-'). Raises ``ValueError`` naming the dataset and the fix."""
        ds = self.dataset
        if ds is None:
            return
        name = type(ds).__name__
        labels = getattr(ds, "labels", None)
        if labels is None or not hasattr(ds, "class_counts") or len(labels) != len(ds):
            raise ValueError(
                f"a Classifier is evaluated on one class per image, and this {name} does not give one label per "
                "sample; use ImageFolderDataset (img_dir/<class>/...) or CocoCropsDataset (the boxes of a COCO json)"
            )
        labels = np.asarray(labels, dtype=np.int64)
        if getattr(ds, "num_classes", self.num_classes) != self.num_classes:
            raise ValueError(
                f"{name} has {ds.num_classes} classes but the model {self.num_classes}; give data.val the training "
                "classes (ImageFolderDataset: classes: <data.train.img_dir>)"
            )
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(
                f"{name} has labels outside 0..{self.num_classes - 1} (min {labels.min()}, max {labels.max()})"
            )
        counts = np.bincount(labels, minlength=self.num_classes)
        absent = [self.class_names[k] for k in np.flatnonzero(counts == 0)]
        if absent and labels.size:
            shown = ", ".join(absent[:8]) + (", ..." if len(absent) > 8 else "")
            logger.warning(
                "data.val has no image of %d of the %d classes (%s): their accuracy is undefined ('-' in the "
                "per-class table) and cls/mean_acc averages the others",
                len(absent),
                self.num_classes,
                shown,
            )

    def reset(self) -> None:
        """Forget every processed image."""
        self.records: list[tuple[int, int, int, float]] = []
        self._top5: list[bool] = []
        self.metrics: dict[str, float] = {}
        self.per_class: list[ClassScores] = []
        self.confusion = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def process(self, batch: Mapping[str, Any], preds: Sequence[Mapping[str, torch.Tensor]]) -> None:
        """Add a batch: ``preds[i]['scores']`` float [C] against ``batch['targets'][i]['labels']`` int64 [1]."""
        k = min(5, self.num_classes)
        ids = batch.get("image_ids") or [-1] * len(preds)
        for i, pred in enumerate(preds):
            gt = torch.as_tensor(batch["targets"][i]["labels"]).reshape(-1)
            scores = torch.as_tensor(pred["scores"]).detach().float().cpu().reshape(-1)
            if gt.numel() != 1 or scores.numel() != self.num_classes:
                raise ValueError(
                    f"ClsEvaluator: image {ids[i]} has {gt.numel()} labels and {scores.numel()} scores; expected one "
                    f"label (labels int64 [1]) and {self.num_classes} class scores (a Classifier's predict)"
                )
            label = int(gt)
            if not 0 <= label < self.num_classes:
                raise ValueError(f"ClsEvaluator: image {ids[i]} has label {label}, outside 0..{self.num_classes - 1}")
            top = scores.topk(k).indices
            self.records.append((int(ids[i]), label, int(top[0]), float(scores[label])))
            self._top5.append(bool((top == label).any()))

    def _gathered(self) -> tuple[list[tuple[int, int, int, float]], list[bool]]:
        """Records and top-5 hits of every rank (this rank's alone outside distributed runs)."""
        if not _dist_on():
            return list(self.records), list(self._top5)
        parts: list = [None] * dist.get_world_size()
        dist.all_gather_object(parts, (self.records, self._top5))
        return [r for p in parts for r in p[0]], [h for p in parts for h in p[1]]

    def compute(self) -> dict[str, float]:
        """Return ``cls/top1``, ``cls/top5``, ``cls/mean_acc``, ``cls/macro_f1`` (every rank's images); fill
        ``per_class``, ``confusion`` and ``records``."""
        records, top5 = self._gathered()
        C = self.num_classes
        gt = np.array([r[1] for r in records], dtype=np.int64)
        pred = np.array([r[2] for r in records], dtype=np.int64)
        conf = np.bincount(gt * C + pred, minlength=C * C).reshape(C, C)
        tp, support, predicted = np.diag(conf).astype(np.float64), conf.sum(1), conf.sum(0)
        recall, precision = _ratio(tp, support), _ratio(tp, predicted)
        both = np.nan_to_num(precision) + np.nan_to_num(recall)
        f1 = np.where(support > 0, _ratio(2 * np.nan_to_num(precision) * np.nan_to_num(recall), both), math.nan)
        f1 = np.where((support > 0) & (both == 0), 0.0, f1)
        n = len(records)
        self.records, self._top5, self.confusion = records, top5, conf
        self.metrics = {
            "cls/top1": float(tp.sum() / n) if n else math.nan,
            "cls/top5": float(np.mean(top5)) if n else math.nan,
            "cls/mean_acc": _nanmean(recall),
            "cls/macro_f1": _nanmean(f1),
        }
        self.per_class = [
            ClassScores(name, k, recall[k], precision[k], recall[k], f1[k], int(support[k]), int(predicted[k]))
            for k, name in enumerate(self.class_names)
        ]
        return dict(self.metrics)

    def summary(self) -> str:
        """The last ``compute()`` as text: the metrics, then the per-class table ('-' where undefined)."""
        if not self.metrics:
            return "ClsEvaluator: nothing computed yet"
        table = [["class", "acc", "prec", "recall", "F1", "images"]]
        table += [
            [r.name, *map(_fraction, (r.accuracy, r.precision, r.recall, r.f1)), str(r.support)] for r in self.per_class
        ]
        widths = [max(len(row[c]) for row in table) for c in range(len(table[0]))]
        rows = [
            "  ".join([row[0].ljust(widths[0]), *(v.rjust(w) for v, w in zip(row[1:], widths[1:]))]) for row in table
        ]
        metrics = "  ".join(f"{k}={_fraction(v)}" for k, v in self.metrics.items())
        return "\n".join([metrics, "per class, in 0..1 ('-': no image of the class, or none predicted as it)", *rows])

    def write_report(self, out_dir: str | os.PathLike) -> list[Path]:
        """Write ``per_class.csv``, ``confusion_matrix.csv`` and ``confusion_matrix.png`` of the last
        ``compute()`` into ``out_dir``; returns the paths ([] before a ``compute()``)."""
        from detkit.analysis.figures import save_figure, write_csv  # lazy: matplotlib

        if not self.metrics:
            return []
        out = Path(out_dir)
        fields = ("accuracy", "precision", "recall", "f1")
        rows = [
            [
                r.name,
                r.label,
                *("" if math.isnan(getattr(r, f)) else round(getattr(r, f), 6) for f in fields),
                r.support,
                r.predicted,
            ]
            for r in self.per_class
        ]
        names = self.class_names
        return [
            write_csv(out / "per_class.csv", ["class", "label", *fields, "images", "predicted"], rows),
            write_csv(
                out / "confusion_matrix.csv",
                ["gt \\ pred", *(f"pred:{n}" for n in names)],
                [[f"gt:{n}", *self.confusion[k].tolist()] for k, n in enumerate(names)],
            ),
            save_figure(confusion_figure(self.confusion, names), out / "confusion_matrix.png"),
        ]


def confusion_figure(confusion: np.ndarray, names: Sequence[str]):
    """Heat map of a [C,C] count matrix: rows true classes, columns predicted ones, colour the share of the row,
    text the counts (up to 30 classes)."""
    from detkit.analysis.figures import row_share_heatmap

    return row_share_heatmap(confusion, names, f"{int(confusion.sum())} images", "share of the true class")
