"""One-stage detectors (the YOLO family): backbone + neck + dense head, optionally with instance masks."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from detkit.models.detectors.parts import (
    batch_geometry,
    build_part,
    build_preprocess,
    default_class_names,
    neck_defaults,
    per_level_channels,
    targets_to_device,
    to_channels_last,
    to_original,
)
from detkit.models.fuse import set_fused_inference
from detkit.models.preprocess import not_a_batch
from detkit.ops.global_batch import global_mean_losses
from detkit.ops.masks import masks_to_original
from detkit.registry import BACKBONES, DETECTORS, HEADS, NECKS

# YOLO models take pixels / 255 with no mean subtraction
_YOLO_PREPROCESS = dict(pixel_mean=(0.0, 0.0, 0.0), pixel_std=(255.0, 255.0, 255.0), size_divisor=32)


@DETECTORS.register
class OneStageDetector(nn.Module):
    """``head(neck(backbone(x)))`` with the head's ``loss`` / ``predict``; parts as modules or spec dicts.

    Args:
        backbone, neck, head: the parts (``neck`` may be None). The neck's ``in_channels`` defaults to the
            backbone's ``out_channels`` and its ``strides`` (or ``in_strides``, as FPN calls them) to the
            backbone's; the head gets ``num_classes``, ``in_channels`` (one per level, also from a neck
            with one ``out_channels`` such as FPN) and ``strides`` of the neck (or backbone) when its spec
            lacks them.
        num_classes: C; class_names: C names.
        preprocess: ``Preprocessor`` keyword arguments (default: pixels / 255, padding to 32). With
            ``channels_last: true`` images and conv weights are channels_last (GPUs with AMP); ``cpu_train``
            (the YOLO configs) the images of CPU training steps only (``Preprocessor``).
        mask_thresh: probability threshold of instance masks (heads that predict ``masks``).
        fast_predict: the inference fast path (:meth:`optimize_for_inference`); default False.

    ``loss(batch)`` -> the head's losses; ``predict(batch)`` -> per image ``boxes``/``scores``/``labels``
    (+ ``masks`` bool [N,H0,W0]) in original-image pixels.
    """

    def __init__(
        self,
        backbone: nn.Module | dict,
        neck: nn.Module | dict | None,
        head: nn.Module | dict,
        num_classes: int = 80,
        class_names: Sequence[str] | None = None,
        preprocess: nn.Module | dict | None = None,
        mask_thresh: float = 0.5,
        fast_predict: bool = False,
    ):
        super().__init__()
        self.num_classes = int(num_classes)
        self.class_names = default_class_names(self.num_classes, class_names)
        self.preprocess = build_preprocess(preprocess, _YOLO_PREPROCESS)
        self.backbone = build_part(BACKBONES, backbone)
        self.neck = build_part(NECKS, neck, **neck_defaults(neck, self.backbone))
        last = self.neck if self.neck is not None else self.backbone
        self.head = build_part(
            HEADS, head, num_classes=self.num_classes, in_channels=per_level_channels(last), strides=last.strides
        )
        if getattr(self.head, "num_classes", self.num_classes) != self.num_classes:
            raise ValueError(
                f"head.num_classes={self.head.num_classes} but the detector has "
                f"num_classes={self.num_classes}; drop it from the head config"
            )
        self.mask_thresh = float(mask_thresh)
        if getattr(self.preprocess, "channels_last", False) is True:
            to_channels_last(self)  # conv weights too: oneDNN / cuDNN's fast layout
        self.optimize_for_inference(fast_predict)

    def optimize_for_inference(self, enabled: bool = True) -> OneStageDetector:
        """Turn the inference fast path on (or off); returns ``self``.

        Eval-mode BatchNorms are folded into their convs (as Ultralytics' ``fuse()``), conv + SiLU run as one
        oneDNN op and, on the CPU, the network runs in channels_last. Parameters and the state dict stay as
        they are and autograd (training) always runs the plain modules. Outputs equal the plain path's up to
        float rounding (tests/models/test_yolo.py).
        """
        self.fast_predict = bool(enabled)
        set_fused_inference(self, self.fast_predict)
        return self

    def forward_raw(self, images: Tensor):
        """Raw head outputs (tensors only) of normalised images [B,3,H,W]: the export-friendly forward."""
        if self.fast_predict and images.device.type == "cpu" and not torch.is_grad_enabled():
            images = images.contiguous(memory_format=torch.channels_last)  # oneDNN's fastest layout
        feats = self.backbone(images)
        return self.head(self.neck(feats) if self.neck is not None else feats)

    def loss(self, batch: dict) -> dict[str, Tensor]:
        """Training losses of a batch (docs/contracts.md); images without objects are allowed.

        With the trainer's batch key ``sync_loss_counts`` the normalisers are counted over every process's
        images (``detkit.ops.global_batch``), for heads whose ``loss`` reports them (``counts=``).
        """
        images = self.preprocess(batch)
        targets = targets_to_device(batch["targets"], images.device)
        raw = self.forward_raw(images)
        if "counts" not in inspect.signature(self.head.loss).parameters:
            return self.head.loss(raw, targets)
        counts: dict[str, Tensor] = {}
        losses = self.head.loss(raw, targets, counts=counts)
        return global_mean_losses(losses, counts, bool(batch.get("sync_loss_counts")))

    @torch.no_grad()
    def predict(
        self, batch: dict, score_thr: float | None = None, nms_thr: float | None = None, max_per_img: int | None = None
    ) -> list[dict[str, Tensor]]:
        """Detections per image in original-image pixels; test settings overridable per call."""
        images = self.preprocess(batch)
        sizes = [tuple(int(v) for v in s) for s in batch["image_sizes"]]
        dets = self.head.predict(self.forward_raw(images), sizes, score_thr, nms_thr, max_per_img)
        out = to_original(dets, batch)
        if dets and "masks" in dets[0]:
            scales, pads, origs = batch_geometry(batch)
            for i, (d, o) in enumerate(zip(dets, out)):
                o["masks"] = masks_to_original(d["masks"], scales[i], pads[i], origs[i], self.mask_thresh)
        return out

    def forward(self, batch: dict, **kwargs) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """``loss(batch)`` in training mode, ``predict(batch, **kwargs)`` in eval mode."""
        if not isinstance(batch, dict):  # torchvision's model([image]) / model(tensor)
            raise TypeError(not_a_batch(batch))
        return self.loss(batch) if self.training else self.predict(batch, **kwargs)
