"""Adapters between detkit models and the CAM library: a module per model type that maps normalised images to
what the targets score, with autograd on (the models' ``predict`` runs without it).

Each adapter's ``forward(images [B,3,H,W])`` gives one item per image (the library pairs items with targets):

- detectors: ``{"boxes", "scores"}`` of every candidate in network-input pixels, before the score threshold
  and NMS: YOLO anchors (``boxes`` [A,4], ``scores`` [A,C], sigmoid) or R-CNN RoIs of the image's proposals
  (``boxes`` [R,C,4] per class, ``scores`` [R,C], softmax without the background);
- segmentors: class logits [C,H,W] at the input size;
- classifiers: class logits [C].

All images of a batch have the size ``image_size`` (the adapter explains copies of one image).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from detkit.ops import batched

__all__ = ["ClassifierAdapter", "DetectorAdapter", "SegmentorAdapter", "adapter_for"]


class _Adapter(nn.Module):
    kind = ""
    head_name = "head"  # the head whose input maps the default layer is taken from

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.image_size: tuple[int, int] = (0, 0)

    def sizes(self, images: Tensor) -> list[tuple[int, int]]:
        return [self.image_size] * images.shape[0]

    def head(self) -> nn.Module:
        return getattr(self.model, self.head_name)


class TwoStageAdapter(_Adapter):
    """Faster / Mask R-CNN: the box head's class boxes and scores of each RoI (proposals as ``predict`` makes them)."""

    kind, head_name = "detector", "box_head"

    def forward(self, images: Tensor) -> list[dict[str, Tensor]]:
        m, sizes = self.model, self.sizes(images)
        feats = m.extract_feats(images)
        proposals = m.rpn_head.predict(m.rpn_head(feats), feats, images.shape[-2:], sizes, train=False)
        raw = m.box_head(feats, proposals, sizes)
        counts = [p.shape[0] for p in proposals]
        limits = batched.box_limits(batched.sizes_tensor(sizes, images.device))  # [B,4]
        limits = torch.repeat_interleave(limits, torch.tensor(counts, device=images.device), 0)  # [R,4]
        boxes, scores = m.box_head.decode(raw, torch.cat(proposals), limits)  # [R,C,4], [R,C]
        return [{"boxes": b, "scores": s} for b, s in zip(boxes.split(counts), scores.split(counts))]


class OneStageAdapter(_Adapter):
    """YOLO (and YOLO-seg): every anchor's decoded, clipped box and class scores (``YOLOHead.dense``)."""

    kind = "detector"

    def forward(self, images: Tensor) -> list[dict[str, Tensor]]:
        head = self.model.head
        det = getattr(head, "det", head)  # YOLOSegHead keeps its YOLOHead as .det
        raw = self.model.forward_raw(images)
        det_raw = raw[0] if det is not head else raw
        boxes, scores = det.dense(det_raw, batched.sizes_tensor(self.sizes(images), images.device))
        return [{"boxes": b, "scores": s} for b, s in zip(boxes, scores)]


class SegmentorAdapter(_Adapter):
    """Segmentors: class logits [B,C,H,W] at the input size (``Segmentor.inference``)."""

    kind, head_name = "segmentor", "decode_head"

    def forward(self, images: Tensor) -> Tensor:
        return self.model.inference(images)


class ClassifierAdapter(_Adapter):
    """Classifiers: class logits [B,C] (``Classifier.forward_raw``)."""

    kind = "classifier"

    def forward(self, images: Tensor) -> Tensor:
        return self.model.forward_raw(images)


DetectorAdapter = (TwoStageAdapter, OneStageAdapter)


def _adapters() -> Sequence[tuple[type, type[_Adapter]]]:
    from detkit.models.detectors.classifier import Classifier
    from detkit.models.detectors.one_stage import OneStageDetector
    from detkit.models.detectors.segmentor import Segmentor
    from detkit.models.detectors.two_stage import TwoStageDetector

    return (
        (TwoStageDetector, TwoStageAdapter),
        (OneStageDetector, OneStageAdapter),
        (Segmentor, SegmentorAdapter),
        (Classifier, ClassifierAdapter),
    )


def adapter_for(model: nn.Module) -> _Adapter:
    """The adapter of ``model``'s type; an :class:`~detkit.explain.layers.ExplainError` for other models."""
    from detkit.explain.layers import ExplainError

    for model_type, adapter in _adapters():
        if isinstance(model, model_type):
            return adapter(model)
    supported = ", ".join(t.__name__ for t, _ in _adapters())
    raise ExplainError(f"explain supports {supported}; got a {type(model).__name__}")
