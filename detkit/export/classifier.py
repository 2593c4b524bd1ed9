"""Tensor-only image classification for ONNX export: the classifier's own preprocessing, network and softmax."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from detkit.export.common import ExportWrapper, as_tensors, dynamic_axes

__all__ = ["ClassifierExport"]


class ClassifierExport(ExportWrapper):
    """``Classifier`` inference as ``forward(images, image_sizes)``; batch and image size stay dynamic.

    Args:
        model: a ``Classifier`` (copied; the original is kept).
        topk: class indices per image in ``labels`` (default: the model's ``topk``).

    Inputs:
        images: uint8 (or float 0..255) [B,3,H,W] RGB, resized as the config's test pipeline does (zero padding
            bottom/right when sizes differ); image_sizes: int64 [B,2] (h, w) inside the batch.
    Outputs:
        scores: float32 [B,C] class probabilities (softmax of the logits, as ``Classifier.predict``);
        labels: int64 [B,k] the top-k classes, most likely first.
    """

    kind = "classification"
    options = ("topk",)
    output_names = ["scores", "labels"]
    dynamic_axes = dynamic_axes({"scores": {0: "batch"}, "labels": {0: "batch"}})
    max_per_img = None  # no detections: nothing to cap or threshold
    score_thr = None

    def __init__(self, model: nn.Module, topk: int | None = None):
        super().__init__(model)
        k = int(topk if topk is not None else model.topk)
        self.topk = max(1, min(k, int(model.num_classes)))

    @property
    def predict_kwargs(self) -> dict:
        """What ``model.predict`` needs to give the outputs of this export."""
        return {"topk": self.topk}

    def forward(self, images: Tensor, image_sizes: Tensor) -> tuple[Tensor, Tensor]:
        x = self.model.preprocess.normalize(images, image_sizes.to(torch.int64))  # [B,3,H,W]
        probs = self.model.forward_raw(x).float().softmax(dim=1)  # [B,C]
        return probs, probs.topk(self.topk, dim=1).indices  # [B,C], [B,k]

    def outputs_to_predictions(self, outputs: Sequence, inputs: Sequence) -> list[dict[str, Tensor]]:
        """Per image ``scores`` float32 [C] and ``labels`` int64 [k] from the outputs (torch or numpy)."""
        scores, labels = as_tensors(outputs)[:2]
        return [{"scores": s.float(), "labels": t.long()} for s, t in zip(scores, labels)]
