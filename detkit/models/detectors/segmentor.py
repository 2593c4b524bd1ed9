"""Semantic segmentor: backbone (+ neck) + decode head (+ auxiliary head); whole-image or sliding-window inference."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detkit.models.detectors.parts import (
    batch_geometry,
    build_part,
    build_preprocess,
    default_class_names,
    neck_defaults,
)
from detkit.models.heads.seg_common import IGNORE, keep_255
from detkit.models.preprocess import not_a_batch
from detkit.registry import BACKBONES, DETECTORS, HEADS, NECKS


def _pair(v: int | Sequence[int] | None, name: str) -> tuple[int, int] | None:
    if v is None:
        return None
    h, w = (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[1]))
    if h <= 0 or w <= 0:
        raise ValueError(f"Segmentor {name} (model.{name}) must be positive (h, w) or one int, got {v}")
    return h, w


def _windows(test_mode: str, crop_size, stride) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """``(crop_size, stride)`` as (h, w) pairs for ``test_mode`` (stride default: 2/3 of the crop); ValueError
    naming the model keys for a slide without a crop or a stride past the crop."""
    if test_mode not in ("whole", "slide"):
        raise ValueError(f"Segmentor test_mode must be 'whole' or 'slide', got {test_mode!r}")
    crop = _pair(crop_size, "crop_size")
    if test_mode == "slide" and crop is None:
        raise ValueError(
            "Segmentor test_mode='slide' needs crop_size, the window size: set model.crop_size: [h, w] (e.g. "
            "the training crop; model.stride, the step between windows, defaults to 2/3 of it), or test_mode: whole"
        )
    default_stride = None if crop is None else tuple(max(1, c * 2 // 3) for c in crop)
    step = _pair(stride, "stride") or default_stride
    if crop is not None and step is not None and any(st > c for st, c in zip(step, crop)):
        raise ValueError(  # windows with gaps between them: pixels no window covers would get 0/0 logits
            f"Segmentor stride {tuple(step)} is larger than crop_size {tuple(crop)}: pixels between the windows "
            "would get no logits; give a model.stride <= model.crop_size (default 2/3 of it)"
        )
    return crop, step


@DETECTORS.register
class Segmentor(nn.Module):
    """Semantic segmentation model; parts given as modules or registry spec dicts (``{'type': ..., ...}``).

    Args:
        backbone, neck, decode_head, auxiliary_head: the parts (``neck``/``auxiliary_head`` may be None).
            The neck's ``in_channels`` defaults to the backbone's ``out_channels`` and its ``strides`` (or
            ``in_strides``, as FPN calls them) to the backbone's (``parts.neck_defaults``); the heads get
            ``in_channels``/``in_strides`` of the neck (or backbone), ``num_classes`` and ``ignore_index``
            when their spec lacks them.
        num_classes: C classes; every label value 0..C-1 is a class (background included, when the data
            has one), 255 is ignored.
        class_names: C names (default ``class_0 ...``).
        preprocess: ``Preprocessor`` keyword arguments (pixel_mean, pixel_std, size_divisor).
        ignore_index: label value that is never scored: 255, as detkit's datasets and transforms mark ignored
            pixels (another value, here or in a head, is a ValueError naming the key).
        test_mode: ``'whole'`` (one pass over the padded batch) or ``'slide'`` (windows of ``crop_size``
            every ``stride`` pixels, overlapping logits averaged; default stride 2/3 of the crop).
        crop_size, stride: (h, w) or an int, for ``test_mode='slide'``.
        align_corners: of the bilinear upsampling of the logits.

    ``loss(batch)`` -> ``{'sem/ce'[, 'sem/dice'][, 'sem/aux_ce']}``; ``predict(batch)`` -> per image
    ``{'sem_seg': int64 [H0,W0]}`` in original-image pixels (resize and padding undone from the batch's
    ``image_sizes``/``scale_factors``/``pad_offsets``/``orig_sizes``, logits resized bilinearly, then argmax).
    """

    def __init__(
        self,
        backbone: nn.Module | dict,
        decode_head: nn.Module | dict,
        neck: nn.Module | dict | None = None,
        auxiliary_head: nn.Module | dict | None = None,
        num_classes: int = 19,
        class_names: Sequence[str] | None = None,
        preprocess: nn.Module | dict | None = None,
        ignore_index: int = 255,
        test_mode: str = "whole",
        crop_size: int | Sequence[int] | None = None,
        stride: int | Sequence[int] | None = None,
        align_corners: bool = False,
    ):
        super().__init__()
        self.num_classes = int(num_classes)
        self.class_names = default_class_names(self.num_classes, class_names)
        self.ignore_index = int(ignore_index)
        if self.ignore_index != IGNORE:
            raise ValueError(keep_255("model.ignore_index", self.ignore_index))
        self.preprocess = build_preprocess(preprocess)
        self.backbone = build_part(BACKBONES, backbone)
        self.neck = build_part(NECKS, neck, **neck_defaults(neck, self.backbone))
        top = self.neck if self.neck is not None else self.backbone
        part = dict(
            num_classes=self.num_classes,
            ignore_index=self.ignore_index,
            in_channels=getattr(top, "out_channels", None),
            in_strides=getattr(top, "strides", None),
        )
        self.decode_head = build_part(HEADS, decode_head, **part)
        self.auxiliary_head = build_part(HEADS, auxiliary_head, **part)
        self._check_heads()
        self.crop_size, self.stride = _windows(test_mode, crop_size, stride)
        self.test_mode, self.align_corners = test_mode, align_corners

    def _check_heads(self) -> None:
        """Each head's ``num_classes`` and loss ``ignore_index`` must be the segmentor's (ValueError naming the key)."""
        for name in ("decode_head", "auxiliary_head"):
            head = getattr(self, name)
            ignore = getattr(getattr(head, "criterion", None), "ignore_index", self.ignore_index)
            if ignore != self.ignore_index:  # its loss would take the 255 pixels for a class: IndexError at iter 0
                raise ValueError(f"{keep_255(f'model.{name}.ignore_index', ignore)}; leave it out of the {name} config")
            if head is not None and getattr(head, "num_classes", self.num_classes) != self.num_classes:
                raise ValueError(
                    f"{name}.num_classes={head.num_classes} but the segmentor has "
                    f"num_classes={self.num_classes}; drop it from the {name} config"
                )

    def extract_feats(self, images: Tensor) -> list[Tensor]:
        """Backbone (+ neck) maps for normalised images [B,3,H,W], increasing stride."""
        feats = self.backbone(images)
        return self.neck(feats) if self.neck is not None else feats

    def _targets(self, batch: dict, size: Sequence[int], device: torch.device) -> Tensor:
        """Stack ``targets[i]['sem_seg']`` into int64 [B,H,W] at the input size (padding = ignore); check labels."""
        out = torch.full((len(batch["targets"]), *size), self.ignore_index, dtype=torch.int64, device=device)
        for i, t in enumerate(batch["targets"]):
            if t.get("sem_seg") is None:
                raise ValueError(
                    "Segmentor.loss needs batch['targets'][i]['sem_seg']: use SegFolderDataset, or "
                    "CocoDataset with with_sem_seg=True"
                )
            sem = torch.as_tensor(t["sem_seg"]).to(device, torch.int64)
            h, w = min(sem.shape[0], size[0]), min(sem.shape[1], size[1])
            out[i, :h, :w] = sem[:h, :w]
        bad = (out != self.ignore_index) & ((out < 0) | (out >= self.num_classes))
        if bad.any():
            vals = sorted(set(out[bad].unique().tolist()))[:10]
            if self.ignore_index != IGNORE and IGNORE in vals:  # (set after construction, which refuses it)
                raise ValueError(f"sem_seg label value 255 with {keep_255('model.ignore_index', self.ignore_index)}")
            raise ValueError(
                f"sem_seg label value(s) {vals} outside 0..{self.num_classes - 1} and not "
                f"{self.ignore_index} (ignore): the model has num_classes={self.num_classes}; "
                "check the dataset's classes (background included?) and model.num_classes"
            )
        return out

    def loss(self, batch: dict) -> dict[str, Tensor]:
        """Training losses for a batch whose targets carry ``sem_seg`` [H,W] (255 = ignore)."""
        images = self.preprocess(batch)  # [B,3,H,W]
        target = self._targets(batch, images.shape[-2:], images.device)  # [B,H,W]
        feats = self.extract_feats(images)
        losses = dict(self.decode_head.loss(self.decode_head(feats), target))
        if self.auxiliary_head is not None:
            losses.update(self.auxiliary_head.loss(self.auxiliary_head(feats), target))
        return losses

    def _whole(self, images: Tensor) -> Tensor:
        """Logits [B,C,H,W] of normalised images [B,3,H,W] in one pass."""
        return self.decode_head.predict(self.decode_head(self.extract_feats(images)), images.shape[-2:])

    def _slide(self, images: Tensor) -> Tensor:
        """Logits [B,C,H,W] averaged over ``crop_size`` windows every ``stride`` pixels (MMSeg's slide rule)."""
        (ch, cw), (sh, sw) = self.crop_size, self.stride
        b, _, h, w = images.shape
        rows, cols = max(h - ch + sh - 1, 0) // sh + 1, max(w - cw + sw - 1, 0) // sw + 1
        total = count = None
        for r in range(rows):
            for c in range(cols):
                y2, x2 = min(r * sh + ch, h), min(c * sw + cw, w)
                y1, x1 = max(y2 - ch, 0), max(x2 - cw, 0)
                logits = self._whole(images[:, :, y1:y2, x1:x2])  # [B,C,y2-y1,x2-x1]
                if total is None:
                    total = logits.new_zeros(b, logits.shape[1], h, w)
                    count = logits.new_zeros(1, 1, h, w)
                total[:, :, y1:y2, x1:x2] += logits
                count[:, :, y1:y2, x1:x2] += 1
        return total / count

    def inference(self, images: Tensor) -> Tensor:
        """Class logits [B,C,H,W] at the size of the normalised input ``images`` [B,3,H,W] (``test_mode``)."""
        return self._slide(images) if self.test_mode == "slide" else self._whole(images)

    def logits_to_original(self, logits: Tensor, batch: dict) -> list[Tensor]:
        """Logits [B,C,H,W] at the input size -> per image float [C,H0,W0] in original-image pixels
        (the letterbox padding cut off, the content resized bilinearly)."""
        scales, pads, origs = batch_geometry(batch)
        out = []
        for i, (h, w) in enumerate(tuple(int(v) for v in s) for s in batch["image_sizes"]):
            left, top = (int(round(float(v))) for v in pads[i])
            (sx, sy), (oh, ow) = scales[i], origs[i]
            ch, cw = min(h - top, int(round(oh * sy))), min(w - left, int(round(ow * sx)))
            region = logits[i : i + 1, :, top : top + ch, left : left + cw]  # [1,C,ch,cw]
            if (ch, cw) != (oh, ow):
                region = F.interpolate(region, size=(oh, ow), mode="bilinear", align_corners=self.align_corners)
            out.append(region[0])  # [C,H0,W0]
        return out

    @torch.no_grad()
    def predict(self, batch: dict) -> list[dict[str, Tensor]]:
        """Per image ``{'sem_seg': int64 [H0,W0]}`` in original-image pixels."""
        logits = self.inference(self.preprocess(batch))  # [B,C,H,W]
        return [{"sem_seg": x.argmax(0).to(torch.int64)} for x in self.logits_to_original(logits, batch)]

    def forward(self, batch: dict) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """``loss(batch)`` in training mode, ``predict(batch)`` in eval mode."""
        if not isinstance(batch, dict):  # torchvision's model([image]) / model(tensor)
            raise TypeError(not_a_batch(batch))
        return self.loss(batch) if self.training else self.predict(batch)
