"""Faster R-CNN / Mask R-CNN: backbone + neck + RPN + RoI box head (+ RoI mask head)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from detkit.models.detectors.parts import (
    build_part,
    build_preprocess,
    default_class_names,
    neck_defaults,
    targets_to_device,
    to_channels_last,
    to_original,
)
from detkit.models.fuse import set_fused_inference
from detkit.models.preprocess import not_a_batch
from detkit.ops.global_batch import draw_generators, global_mean_losses
from detkit.registry import BACKBONES, DETECTORS, HEADS, NECKS


@DETECTORS.register
class TwoStageDetector(nn.Module):
    """Two-stage detector; parts given as modules or registry spec dicts (``{'type': ..., ...}``).

    Args:
        backbone, neck, rpn_head, box_head, mask_head: the parts (``neck``/``mask_head`` may be None).
            The neck's ``in_channels`` defaults to the backbone's ``out_channels`` and its ``strides`` (or
            ``in_strides``, as FPN calls them) to the backbone's (``parts.neck_defaults``); ``num_classes`` is
            passed to the box and mask heads when their spec lacks it.
        num_classes: C foreground classes (labels 0..C-1).
        class_names: C names (default ``class_0 ...``).
        preprocess: ``Preprocessor`` keyword arguments (pixel_mean, pixel_std, size_divisor, channels_last).
            ``channels_last: true`` puts the images and the backbone, neck and RPN conv weights in channels_last
            (GPUs with AMP), ``cpu_train`` the images of CPU training steps only (the R50-FPN configs); the maps
            turn NCHW before RoIAlign.
        mask_thresh: probability threshold of the pasted masks.
        fast_predict: the inference fast path for ``predict`` (see :meth:`optimize_for_inference`);
            default False: the plain modules, bit for bit torchvision's arithmetic.

    ``loss(batch)`` -> ``{'rpn/cls', 'rpn/box', 'roi/cls', 'roi/box'[, 'roi/mask']}``; ``predict(batch)`` ->
    per image ``boxes``/``scores``/``labels`` (+ ``masks`` bool [N,H0,W0]) in original-image pixels.
    """

    def __init__(
        self,
        backbone: nn.Module | dict,
        neck: nn.Module | dict | None,
        rpn_head: nn.Module | dict,
        box_head: nn.Module | dict,
        mask_head: nn.Module | dict | None = None,
        num_classes: int = 80,
        class_names: Sequence[str] | None = None,
        preprocess: nn.Module | dict | None = None,
        mask_thresh: float = 0.5,
        fast_predict: bool = False,
    ):
        super().__init__()
        self.num_classes = int(num_classes)
        self.class_names = default_class_names(self.num_classes, class_names)
        self.preprocess = build_preprocess(preprocess)
        self.backbone = build_part(BACKBONES, backbone)
        self.neck = build_part(NECKS, neck, **neck_defaults(neck, self.backbone))
        self.rpn_head = build_part(HEADS, rpn_head)
        self.box_head = build_part(HEADS, box_head, num_classes=self.num_classes)
        self.mask_head = build_part(HEADS, mask_head, num_classes=self.num_classes)
        for name in ("box_head", "mask_head"):
            head = getattr(self, name)
            if head is not None and getattr(head, "num_classes", self.num_classes) != self.num_classes:
                raise ValueError(
                    f"{name}.num_classes={head.num_classes} but the detector has "
                    f"num_classes={self.num_classes}; drop it from the {name} config"
                )
        self.mask_thresh = float(mask_thresh)
        if getattr(self.preprocess, "channels_last", False) is True:  # the dense parts (RoI heads: NCHW on GPUs)
            to_channels_last(self.backbone, self.neck, self.rpn_head)
        self.optimize_for_inference(fast_predict)

    def optimize_for_inference(self, enabled: bool = True) -> TwoStageDetector:
        """Turn the inference fast path of ``predict`` on (or off); returns ``self``. For inference models.

        Frozen norms are folded into their convs, conv + add + ReLU run as one oneDNN op, and on the CPU the
        backbone, neck and RPN run in channels_last (``detkit.models.fuse``). Parameters, buffers and the
        state dict stay as they are, and ``loss`` (autograd) always runs the plain modules, so training and
        checkpoint loading are unaffected. Outputs equal the plain path's up to float rounding (a relative
        few 1e-6 on the features; docs/benchmarks.md).
        """
        self.fast_predict = bool(enabled)
        set_fused_inference(self, self.fast_predict)
        return self

    def extract_feats(self, images: Tensor) -> list[Tensor]:
        """Backbone (+ neck) maps for normalised images [B,3,H,W], increasing stride."""
        feats = self.backbone(images)
        return self.neck(feats) if self.neck is not None else feats

    def _proposals(self, batch: dict, train: bool) -> tuple[list[Tensor], tuple, list, list[Tensor], tuple]:
        """Features, raw RPN outputs, image sizes, detached proposals and the padded input (H, W)."""
        images = self.preprocess(batch)  # [B,3,H,W] float
        if not train and self.fast_predict and images.device.type == "cpu":
            images = images.contiguous(memory_format=torch.channels_last)  # oneDNN's fastest layout
        feats = self.extract_feats(images)
        sizes = [tuple(int(v) for v in s) for s in batch["image_sizes"]]
        raw = self.rpn_head(feats)
        proposals = self.rpn_head.predict(raw, feats, images.shape[-2:], sizes, train=train)
        return feats, raw, sizes, [p.detach() for p in proposals], tuple(images.shape[-2:])

    def loss(self, batch: dict) -> dict[str, Tensor]:
        """Training losses for a batch (docs/contracts.md); images without objects are allowed.

        The trainer's batch keys ``draw_seeds`` (anchor and RoI sampling per image) and ``sync_loss_counts``
        (normalisers over every process's images) make a distributed step equal one process's over the
        global batch (``detkit.ops.global_batch``).
        """
        feats, raw, sizes, proposals, batch_shape = self._proposals(batch, train=True)
        targets = targets_to_device(batch["targets"], feats[0].device)
        gens = draw_generators(batch.get("draw_seeds"), feats[0].device)
        counts: dict[str, Tensor] = {}
        losses = dict(self.rpn_head.loss(raw, feats, batch_shape, targets, sizes, generators=gens, counts=counts))
        props, labels, reg_targets, matched = self.box_head.sample(proposals, targets, generators=gens)
        losses.update(self.box_head.loss(self.box_head(feats, props, sizes), labels, reg_targets, counts=counts))
        if self.mask_head is not None:
            if any("masks" not in t for t in targets):
                raise ValueError(
                    "the mask head needs instance masks in batch['targets']: build the training "
                    "dataset with with_masks=True"
                )
            pos = [lab < self.num_classes for lab in labels]
            mask_props = [p[m] for p, m in zip(props, pos)]
            logits = self.mask_head(feats, mask_props, sizes)
            losses.update(
                self.mask_head.loss(
                    logits,
                    mask_props,
                    [t["masks"] for t in targets],
                    [i[m] for i, m in zip(matched, pos)],
                    [lab[m] for lab, m in zip(labels, pos)],
                    counts=counts,
                )
            )
        return global_mean_losses(losses, counts, bool(batch.get("sync_loss_counts")))

    @torch.no_grad()
    def predict(
        self, batch: dict, score_thr: float | None = None, nms_thr: float | None = None, max_per_img: int | None = None
    ) -> list[dict[str, Tensor]]:
        """Detections per image in original-image pixels; test settings overridable per call."""
        feats, _, sizes, proposals, _ = self._proposals(batch, train=False)
        dets = self.box_head.predict(
            self.box_head(feats, proposals, sizes),
            proposals,
            sizes,
            score_thr=score_thr,
            nms_thr=nms_thr,
            max_per_img=max_per_img,
        )
        probs = None
        if self.mask_head is not None:
            logits = self.mask_head(feats, [d["boxes"] for d in dets], sizes)
            probs = self.mask_head.predict(logits, dets)
        return to_original(dets, batch, probs, self.mask_thresh)

    def forward(self, batch: dict, **kwargs) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """``loss(batch)`` in training mode, ``predict(batch, **kwargs)`` in eval mode."""
        if not isinstance(batch, dict):  # torchvision's model([image]) / model(tensor)
            raise TypeError(not_a_batch(batch))
        return self.loss(batch) if self.training else self.predict(batch, **kwargs)
