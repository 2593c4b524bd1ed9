"""What every export wrapper shares: the exported inputs, a plain copy of the model, padded outputs to predictions.

An export wrapper is an ``nn.Module`` whose ``forward(images, image_sizes)`` takes and returns tensors only,
with ``input_names``, ``output_names``, ``dynamic_axes``, ``max_per_img``, ``size_divisor``,
``example_inputs(batch_size, image_size)``, ``inputs_from_batch(batch)`` and
``outputs_to_predictions(outputs, inputs)``. Its arithmetic is the detector's own: it calls the batched,
tensor-only steps of the model's preprocessor and heads (the same ones their ``predict`` calls).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

INPUT_NAMES = ["images", "image_sizes"]
IMAGE_AXES = {"images": {0: "batch", 2: "height", 3: "width"}, "image_sizes": {0: "batch"}}


class ExportError(ValueError):
    """A model or an option that the ONNX export does not support; the message says what is supported."""


def plain_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with its inference fast path off (fused oneDNN ops have no ONNX form)."""
    model = copy.deepcopy(model).eval()
    if hasattr(model, "optimize_for_inference"):
        model.optimize_for_inference(False)
    return model


def dynamic_axes(outputs: dict[str, dict[int, str]]) -> dict[str, dict[int, str]]:
    """The inputs' dynamic axes (batch, height, width) plus those of the given outputs."""
    return {**IMAGE_AXES, **outputs}


class ExportWrapper(nn.Module):
    """What the wrappers share: a plain copy of the model, the two inputs, example inputs for tracing.

    Subclasses set ``options`` (their keyword arguments besides the model), ``output_names``,
    ``dynamic_axes``, ``max_per_img`` and ``score_thr``, and define ``forward`` and ``outputs_to_predictions``.
    """

    input_names = INPUT_NAMES
    options: tuple[str, ...] = ()
    kind = "detection"  # or "classification": what verify_onnx compares

    @property
    def predict_kwargs(self) -> dict:
        """What ``model.predict`` needs to give the outputs of this export (verify_onnx's reference)."""
        return {"max_per_img": self.max_per_img}

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = plain_copy(model)
        self.mask_thresh = float(getattr(self.model, "mask_thresh", 0.5))
        self.size_divisor = int(getattr(self.model.preprocess, "size_divisor", 32))

    def example_inputs(self, batch_size: int = 1, image_size: Sequence[int] = (320, 320)) -> tuple[Tensor, Tensor]:
        """Random uint8 images [B,3,H,W] (H, W rounded up to the size divisor) and their sizes int64 [B,2]."""
        d = self.size_divisor
        h, w = (-(-int(s) // d) * d for s in image_size)
        images = torch.randint(0, 256, (batch_size, 3, h, w), dtype=torch.uint8)
        return images, torch.tensor([[h, w]] * batch_size, dtype=torch.int64)

    @staticmethod
    def inputs_from_batch(batch: dict) -> tuple[Tensor, Tensor]:
        """The exported inputs (``images`` uint8 [B,3,H,W], ``image_sizes`` int64 [B,2]) of a ``collate`` batch."""
        return batch["images"], torch.tensor([list(s) for s in batch["image_sizes"]], dtype=torch.int64)


def as_tensors(outputs: Sequence) -> list[Tensor]:
    """onnxruntime's numpy outputs (or torch tensors) as CPU tensors."""
    return [torch.as_tensor(np.asarray(o)) for o in outputs]


def padded_to_predictions(boxes: Tensor, scores: Tensor, labels: Tensor, num: Tensor) -> list[dict[str, Tensor]]:
    """Per image ``boxes``/``scores``/``labels`` from padded [B,K,...] outputs and ``num_dets`` [B]."""
    return [
        {"boxes": boxes[i, :n].float(), "scores": scores[i, :n].float(), "labels": labels[i, :n].long()}
        for i, n in enumerate(num.tolist())
    ]
