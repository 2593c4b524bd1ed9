"""Tensor-only semantic segmentation for ONNX export: the segmentor's preprocessing, network and per-pixel argmax.

The wrapper calls what ``Segmentor.predict`` calls: ``Preprocessor.normalize``, ``Segmentor.inference`` (the
network and the decode head's bilinear resize of the logits to the input size; sliding windows with
``test_mode='slide'``) and the argmax over the classes. Its ``labels`` therefore equal ``predict``'s
``sem_seg`` in network-input pixels (each image's ``[:h, :w]`` of the padded batch).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from detkit.export.common import ExportWrapper, as_tensors, dynamic_axes

__all__ = ["SemanticExport"]


class SemanticExport(ExportWrapper):
    """``Segmentor`` inference as ``forward(images, image_sizes) -> (labels, logits)``, at the input size.

    Args:
        model: a ``Segmentor`` (copied; the original is kept).

    Inputs:
        images: uint8 (or float 0..255) [B,3,H,W] RGB, H and W multiples of the size divisor, each image
            resized as the config's test pipeline does (zero padding bottom/right when sizes differ);
        image_sizes: int64 [B,2] the (h, w) of each image inside the padded batch.
    Outputs (network-input pixels, the padded batch: cut each image's ``[:h, :w]``):
        labels: int64 [B,H,W] the class of each pixel (argmax of the logits, the lower class on exact ties);
        logits: float32 [B,C,H,W] class logits, bilinearly resized to the input size by the decode head.
    Batch and image size stay dynamic where the model allows it (:meth:`dynamic_unsupported`).
    """

    kind = "semantic"
    output_names = ["labels", "logits"]
    dynamic_axes = dynamic_axes(
        {"labels": {0: "batch", 1: "height", 2: "width"}, "logits": {0: "batch", 2: "height", 3: "width"}}
    )
    max_per_img = None  # no detections: nothing to cap or threshold
    score_thr = None

    @property
    def predict_kwargs(self) -> dict:
        """What ``model.predict`` needs to give the outputs of this export: nothing (``Segmentor.predict(batch)``)."""
        return {}

    def forward(self, images: Tensor, image_sizes: Tensor) -> tuple[Tensor, Tensor]:
        x = self.model.preprocess.normalize(images, image_sizes.to(torch.int64))  # [B,3,H,W]
        logits = self.model.inference(x).float()  # [B,C,H,W]
        return logits.argmax(dim=1), logits  # [B,H,W], [B,C,H,W]

    def outputs_to_predictions(self, outputs: Sequence, inputs: Sequence) -> list[dict[str, Tensor]]:
        """Per image ``sem_seg`` int64 [h,w] (as ``model.predict`` in network-input pixels) and ``logits``
        float32 [C,h,w]: each image's ``[:h, :w]`` of the outputs (torch or numpy)."""
        labels, logits = as_tensors(outputs)[:2]
        sizes = torch.as_tensor(inputs[1]).tolist()
        return [
            {"sem_seg": labels[i, :h, :w].long(), "logits": logits[i, :, :h, :w].float()}
            for i, (h, w) in enumerate(sizes)
        ]

    def _pool_sizes(self) -> list[int]:
        """The output sizes (other than 1) of the model's adaptive average pools (UPerHead's pyramid pooling)."""
        sizes = set()
        for m in self.model.modules():
            if isinstance(m, nn.AdaptiveAvgPool2d):
                out = m.output_size if isinstance(m.output_size, tuple) else (m.output_size,)
                sizes.update(int(s) for s in out if s is not None and int(s) != 1)
        return sorted(sizes)

    def dynamic_unsupported(self) -> str | None:
        """Why a graph of this model cannot keep the image size dynamic (None: it can): sliding windows, adaptive
        pooling to sizes other than 1, or a part that turns traced sizes into fixed numbers (found by tracing
        at one size and running the trace at another: the trace must give what the model gives)."""
        if getattr(self.model, "test_mode", "whole") == "slide":
            return (
                f"test_mode 'slide' (windows of {tuple(self.model.crop_size)} every {tuple(self.model.stride)} px) "
                "runs a window grid that depends on the image size, which a dynamic graph cannot hold"
            )
        pools = self._pool_sizes()
        if pools:
            return f"its adaptive average pooling to {pools} (UPerHead's pyramid pooling) has no dynamic ONNX form"
        if not self._trace_follows_the_size():
            return (
                "part of the model turns the traced image size into fixed numbers (a resize to int() sizes), so a "
                "dynamic graph would compute at the traced size only"
            )
        return None

    def _trace_follows_the_size(self) -> bool:
        """Whether a trace at 2x2 size divisors gives, at 3x4 divisors and another batch, the model's own logits."""
        d, device = self.size_divisor, next(self.parameters()).device
        small, other = (
            tuple(t.to(device) for t in self.example_inputs(b, size))
            for b, size in ((1, (2 * d, 2 * d)), (2, (3 * d, 4 * d)))
        )
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's warnings: the check below is the verdict
            try:
                got = torch.jit.trace(self, small, check_trace=False)(*other)[1]
            except RuntimeError:  # a fixed size met another one (e.g. adding maps of two sizes)
                return False
            want = self(*other)[1]
        return got.shape == want.shape and torch.allclose(got, want, rtol=1e-4, atol=1e-4)

    def size_unsupported(self, example: Sequence[Tensor]) -> str | None:
        """Why the graph cannot be written at the size of the ``example`` inputs (None: it can): ONNX pools
        adaptively only where the pooled map's sides divide by the output size (UPerHead's pyramid pooling)."""
        sizes = self._pool_sizes()
        if not sizes:
            return None
        pools = [m for m in self.model.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
        maps: list[tuple[int, ...]] = []
        hooks = [m.register_forward_hook(lambda _m, args, out: maps.append(tuple(args[0].shape[-2:]))) for m in pools]
        try:
            with torch.no_grad():
                self(*example)
        finally:
            for hook in hooks:
                hook.remove()
        bad = [m for m in maps if any(side % s for side in m for s in sizes)]
        if not bad:
            return None
        (h, w), side = bad[0], math.lcm(*sizes) * int(example[0].shape[-2]) // bad[0][0]
        return (
            f"ONNX pools adaptively (to {sizes}: UPerHead's pyramid pooling) only where the pooled map's sides divide "
            f"by each size, and this size pools a {h}x{w} map: give --image-size with sides multiple of {side} "
            f"(e.g. {side},{side} or {2 * side},{2 * side})"
        )
