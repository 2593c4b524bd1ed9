"""Semantic segmentation metrics (mIoU, aAcc, mAcc) from a confusion matrix."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F


class ClassIoU(NamedTuple):
    """One row of the per-class table; IoU / Acc are nan where undefined (see ``SemSegEvaluator``)."""

    name: str
    label: int
    IoU: float
    Acc: float
    num_pixels: int


def _dist_on() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _nanmean(x: torch.Tensor) -> float:
    x = x[~torch.isnan(x)]
    return float(x.mean()) if x.numel() else math.nan


class SemSegEvaluator:
    """Accumulate a ``[C, C]`` confusion matrix (rows: ground truth, columns: prediction) and score it.

    ``sem/mIoU`` is the mean IoU over classes that occur in the ground truth or the prediction of the
    evaluated images (a class absent from both has IoU nan and is left out of the mean); ``sem/mAcc``
    the mean per-class pixel accuracy over classes present in the ground truth; ``sem/aAcc`` the
    fraction of all valid pixels labelled correctly. Pixels whose ground truth is ``ignore_index``
    never count. Values are in 0..1.

    Args:
        num_classes: C; ground truth must be in 0..C-1 or ``ignore_index``.
        ignore_index: ground-truth value that is not scored.
        class_names: names per label (default: the label numbers).
    Attributes:
        metric_names: the keys ``compute()`` returns.
    """

    metric_names = ("sem/mIoU", "sem/mAcc", "sem/aAcc")

    def __init__(self, num_classes: int, ignore_index: int = 255, class_names: Sequence[str] | None = None):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class_names for {num_classes} classes")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        self.reset()

    def reset(self) -> None:
        """Zero the confusion matrix."""
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        self.per_class: list[ClassIoU] = []
        self.metrics: dict[str, float] = {}

    def update(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        """Add one image: ``pred`` and ``gt`` int [H, W] of the same size."""
        if pred.shape != gt.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in size")
        C = self.num_classes
        gt = gt.reshape(-1).to(pred.device, torch.int64)
        pred = pred.reshape(-1).to(torch.int64)
        valid = gt != self.ignore_index
        gt, pred = gt[valid], pred[valid]
        if gt.numel() and (int(gt.min()) < 0 or int(gt.max()) >= C):
            raise ValueError(
                f"ground-truth labels must be in 0..{C - 1} or {self.ignore_index} (ignore), got "
                f"{int(gt.min())}..{int(gt.max())}; check num_classes and ignore_index"
            )
        if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= C):
            raise ValueError(f"predicted labels must be in 0..{C - 1}, got {int(pred.min())}..{int(pred.max())}")
        counts = torch.bincount(gt * C + pred, minlength=C * C).reshape(C, C)
        self.confusion = self.confusion.to(counts.device) + counts

    def process(self, batch: Mapping[str, Any], preds: Sequence[Mapping[str, torch.Tensor]]) -> None:
        """Add a batch: ``preds[i]['sem_seg']`` int64 [H0, W0] against ``batch['targets'][i]['sem_seg']``.

        The target map is in the network's input frame (padded): it is cropped to the image content
        (``image_sizes``, minus any letterbox ``pad_offsets`` region), then, if its size differs from the
        prediction's (original image size), resized to it with nearest-neighbour. That resize is an
        approximation of the original-resolution labels; score at the original resolution by using a
        validation pipeline that does not resize.
        """
        for i, pred in enumerate(preds):
            p = pred["sem_seg"]
            gt = self._target_in_original_frame(batch, i, tuple(p.shape[-2:]))
            self.update(p, gt)

    @staticmethod
    def _target_in_original_frame(batch: Mapping[str, Any], i: int, size: tuple[int, int]) -> torch.Tensor:
        gt = torch.as_tensor(batch["targets"][i]["sem_seg"])
        h, w = (int(v) for v in batch["image_sizes"][i]) if "image_sizes" in batch else gt.shape[-2:]
        top = left = 0
        if "pad_offsets" in batch and "scale_factors" in batch and "orig_sizes" in batch:
            left, top = (int(round(v)) for v in batch["pad_offsets"][i])
            sx, sy = batch["scale_factors"][i]
            oh, ow = batch["orig_sizes"][i]
            h, w = min(h - top, int(round(oh * sy))), min(w - left, int(round(ow * sx)))
        gt = gt[top : top + h, left : left + w]
        if tuple(gt.shape) != size:
            gt = F.interpolate(gt[None, None].float(), size=size, mode="nearest-exact")[0, 0].long()
        return gt

    def compute(self) -> dict[str, float]:
        """Return ``sem/mIoU``, ``sem/mAcc``, ``sem/aAcc`` (summed over every rank) and fill ``per_class``."""
        conf = self.confusion
        if _dist_on():
            device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
            conf = conf.to(device, copy=True)  # all_reduce is in place: keep the local matrix
            dist.all_reduce(conf, op=dist.ReduceOp.SUM)
        conf = conf.cpu().double()
        tp = conf.diag()
        gt_px, pred_px = conf.sum(1), conf.sum(0)
        union = gt_px + pred_px - tp
        iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, math.nan))
        acc = torch.where(gt_px > 0, tp / gt_px.clamp(min=1), torch.full_like(tp, math.nan))
        total = float(conf.sum())
        if total == 0:
            warnings.warn("SemSegEvaluator.compute(): no valid pixel was processed; metrics are nan", stacklevel=2)
        self.metrics = {
            "sem/mIoU": _nanmean(iou),
            "sem/mAcc": _nanmean(acc),
            "sem/aAcc": float(tp.sum()) / total if total else math.nan,
        }
        self.per_class = [
            ClassIoU(n, k, float(iou[k]), float(acc[k]), int(gt_px[k])) for k, n in enumerate(self.class_names)
        ]
        return dict(self.metrics)

    def summary(self) -> str:
        """Return the last ``compute()`` as a text table (IoU and accuracy in 0..1, said in the title; '-' where
        undefined)."""
        if not self.metrics:
            return "SemSegEvaluator: nothing computed yet"

        def frac(v: float) -> str:
            return "-" if math.isnan(v) else f"{v:.3f}"

        width = max([len("class")] + [len(r.name) for r in self.per_class])
        lines = [
            "  ".join(f"{k}={frac(v)}" for k, v in self.metrics.items()),
            "per-class IoU and pixel accuracy in 0..1, '-' = class absent from ground truth and predictions",
            f"{'class':<{width}}  {'IoU':>6}  {'Acc':>6}  {'pixels':>10}",
        ]
        lines += [f"{r.name:<{width}}  {frac(r.IoU):>6}  {frac(r.Acc):>6}  {r.num_pixels:>10}" for r in self.per_class]
        return "\n".join(lines)
