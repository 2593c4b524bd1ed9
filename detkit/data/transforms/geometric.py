"""Geometric transforms that keep the map back to the original image: ``ResizeShortestEdge``, ``LetterBox``.

They take and return the sample dict of docs/contracts.md, never modify the arrays they are given, and
update ``scale_factor`` / ``pad_offset`` (a point ``x`` of the output maps back as ``(x - left) / sx``).
Instance masks and ``sem_seg`` resize nearest; padding is 0 in masks and 255 (ignore) in ``sem_seg``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from detkit.registry import TRANSFORMS

__all__ = [
    "INSTANCE_KEYS",
    "SEM_IGNORE",
    "LetterBox",
    "ResizeShortestEdge",
    "pad_sample",
    "resize_output_size",
    "resize_sample",
    "sanitize_instances",
]

# per-instance arrays (first dim N) that are filtered together with the boxes
INSTANCE_KEYS = ("boxes", "labels", "masks", "iscrowd", "areas")
SEM_IGNORE = 255
_INTERP = {
    "nearest": cv2.INTER_NEAREST_EXACT,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}
# BboxParams keys a config may set; format, label_fields and clip are fixed by detkit


def _interp(name: str) -> int:
    if name not in _INTERP:
        raise ValueError(f"interpolation '{name}' is not one of {sorted(_INTERP)}")
    return _INTERP[name]


def sanitize_instances(sample: dict, min_size: float = 0.0) -> dict:
    """Clip boxes to the image and drop boxes not wider/taller than ``min_size`` with their masks/labels."""
    if "boxes" not in sample:
        return sample
    h, w = sample["image"].shape[:2]
    boxes = np.asarray(sample["boxes"], dtype=np.float32).reshape(-1, 4)
    clipped = np.empty_like(boxes)
    np.clip(boxes[:, 0::2], 0.0, w, out=clipped[:, 0::2])
    np.clip(boxes[:, 1::2], 0.0, h, out=clipped[:, 1::2])
    keep = ((clipped[:, 2] - clipped[:, 0]) > min_size) & ((clipped[:, 3] - clipped[:, 1]) > min_size)
    out = dict(sample)
    out["boxes"] = clipped
    if not keep.all():
        out["boxes"] = clipped[keep]
        for k in INSTANCE_KEYS[1:]:
            if k in out and out[k] is not None and len(out[k]) == len(keep):
                out[k] = np.asarray(out[k])[keep]
    return out


def resize_output_size(h: int, w: int, short: int, max_size: int | None) -> tuple[int, int]:
    """Output ``(h, w)`` of a keep-ratio resize, computed as torchvision's GeneralizedRCNNTransform does.

    ``scale = min(short / min(h, w), max_size / max(h, w))`` and each side becomes ``floor(side * scale)``
    (``F.interpolate(scale_factor=scale, recompute_scale_factor=True)``).
    """
    scale = short / min(h, w)
    if max_size is not None:
        scale = min(scale, max_size / max(h, w))
    return max(1, int(h * scale)), max(1, int(w * scale))


def _nearest_resize(arr: np.ndarray, new_h: int, new_w: int) -> np.ndarray:
    """Nearest (pixel-centre, like cv2.INTER_NEAREST_EXACT) resize of the last two dims of ``[..., H, W]``."""
    h, w = arr.shape[-2:]
    rows = np.minimum(((np.arange(new_h) + 0.5) * (h / new_h)).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(new_w) + 0.5) * (w / new_w)).astype(np.int64), w - 1)
    return arr[..., rows[:, None], cols[None, :]]


def resize_sample(sample: dict, new_h: int, new_w: int, interpolation: int = cv2.INTER_LINEAR) -> dict:
    """Resize the image (and boxes, masks, sem_seg) to ``(new_h, new_w)``; update scale_factor / pad_offset."""
    img = sample["image"]
    h, w = img.shape[:2]
    out = dict(sample)
    out["image"] = cv2.resize(img, (new_w, new_h), interpolation=interpolation)
    sx, sy = new_w / w, new_h / h
    if out.get("boxes") is not None:
        out["boxes"] = np.asarray(out["boxes"], np.float32).reshape(-1, 4) * np.array([sx, sy, sx, sy], np.float32)
    if out.get("masks") is not None:
        out["masks"] = _nearest_resize(np.asarray(out["masks"]), new_h, new_w)
    if out.get("sem_seg") is not None:
        out["sem_seg"] = _nearest_resize(np.asarray(out["sem_seg"]), new_h, new_w)
    sf = out.get("scale_factor", (1.0, 1.0))
    out["scale_factor"] = (float(sf[0]) * sx, float(sf[1]) * sy)
    po = out.get("pad_offset", (0, 0))
    out["pad_offset"] = (float(po[0]) * sx, float(po[1]) * sy)  # padding scales with the image
    return sanitize_instances(out)


@TRANSFORMS.register
class ResizeShortestEdge:
    """Keep-ratio resize: short side to one of ``short_sizes`` (random when several), long side <= ``max_size``.

    The output size equals torchvision's ``GeneralizedRCNNTransform`` (``floor(side * scale)``); an image
    that it would not resize is returned unchanged. Boxes scale, masks / sem_seg resize nearest.

    Args:
        short_sizes: candidate short-side sizes (an int is one size).
        max_size: upper bound of the long side (None: unbounded).
        sample: ``'choice'`` picks one of ``short_sizes``; ``'range'`` picks an int in ``[min, max]``.
        interpolation: image interpolation, one of nearest, bilinear, bicubic, area, lanczos.
    """

    def __init__(
        self,
        short_sizes: int | Sequence[int] = (800,),
        max_size: int | None = 1333,
        sample: str = "choice",
        interpolation: str = "bilinear",
    ):
        self.short_sizes = (
            (int(short_sizes),) if isinstance(short_sizes, (int, float)) else tuple(int(s) for s in short_sizes)
        )
        if not self.short_sizes or min(self.short_sizes) <= 0:
            raise ValueError(f"ResizeShortestEdge: short_sizes must be positive ints, got {short_sizes!r}")
        if sample not in ("choice", "range"):
            raise ValueError(f"ResizeShortestEdge: sample must be 'choice' or 'range', got {sample!r}")
        if sample == "range" and len(self.short_sizes) != 2:
            raise ValueError("ResizeShortestEdge: sample='range' needs short_sizes=[min, max]")
        self.max_size = None if max_size is None else int(max_size)
        self.sample = sample
        self.interpolation = interpolation
        self._interp = _interp(interpolation)
        self.rng = np.random.default_rng()

    def _pick_short(self) -> int:
        if self.sample == "range":
            return int(self.rng.integers(self.short_sizes[0], self.short_sizes[1] + 1))
        if len(self.short_sizes) == 1:
            return self.short_sizes[0]
        return self.short_sizes[int(self.rng.integers(len(self.short_sizes)))]

    def __call__(self, sample: dict) -> dict:
        h, w = sample["image"].shape[:2]
        new_h, new_w = resize_output_size(h, w, self._pick_short(), self.max_size)
        if (new_h, new_w) == (h, w):
            return sample
        return resize_sample(sample, new_h, new_w, self._interp)

    def __repr__(self) -> str:
        return (
            f"ResizeShortestEdge(short_sizes={list(self.short_sizes)}, max_size={self.max_size}, "
            f"sample={self.sample!r}, interpolation={self.interpolation!r})"
        )


@TRANSFORMS.register
class LetterBox:
    """Keep-ratio resize to fit ``size`` (h, w), then pad centred; masks pad with 0, sem_seg with 255.

    Args:
        size: output ``(h, w)`` (an int is a square).
        pad_value: image fill value of the padding.
        scaleup: allow enlarging small images (False: only shrink).
        interpolation: image interpolation name.
    """

    def __init__(
        self,
        size: int | Sequence[int] = (640, 640),
        pad_value: int = 114,
        scaleup: bool = True,
        interpolation: str = "bilinear",
    ):
        self.size = (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[1]))
        self.pad_value = pad_value
        self.scaleup = scaleup
        self._interp = _interp(interpolation)

    def __call__(self, sample: dict) -> dict:
        h, w = sample["image"].shape[:2]
        out_h, out_w = self.size
        r = min(out_h / h, out_w / w)
        if not self.scaleup:
            r = min(r, 1.0)
        new_h = min(out_h, max(1, int(round(h * r))))
        new_w = min(out_w, max(1, int(round(w * r))))
        if (new_h, new_w) != (h, w):
            sample = resize_sample(sample, new_h, new_w, self._interp)
        top, left = (out_h - new_h) // 2, (out_w - new_w) // 2
        return pad_sample(sample, top, out_h - new_h - top, left, out_w - new_w - left, self.pad_value)

    def __repr__(self) -> str:
        return f"LetterBox(size={self.size}, pad_value={self.pad_value}, scaleup={self.scaleup})"


def pad_sample(sample: dict, top: int, bottom: int, left: int, right: int, pad_value: Any = 0) -> dict:
    """Pad the image (``pad_value``), masks (0) and sem_seg (255); shift boxes and ``pad_offset``."""
    if top == bottom == left == right == 0:
        return sample
    out = dict(sample)
    img = sample["image"]
    value = [pad_value] * img.shape[2] if img.ndim == 3 and np.isscalar(pad_value) else pad_value
    out["image"] = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=value)
    if out.get("boxes") is not None:
        out["boxes"] = np.asarray(out["boxes"], np.float32).reshape(-1, 4) + np.array(
            [left, top, left, top], np.float32
        )
    if out.get("masks") is not None:
        out["masks"] = np.pad(np.asarray(out["masks"]), ((0, 0), (top, bottom), (left, right)))
    if out.get("sem_seg") is not None:
        out["sem_seg"] = np.pad(np.asarray(out["sem_seg"]), ((top, bottom), (left, right)), constant_values=SEM_IGNORE)
    po = out.get("pad_offset", (0, 0))
    out["pad_offset"] = (float(po[0]) + left, float(po[1]) + top)
    return out
