"""Segmentation transforms: random crop with a cap on one class's share (MMSeg's cat_max_ratio), ignore padding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from detkit.data.transforms.geometric import SEM_IGNORE, pad_sample, sanitize_instances
from detkit.registry import TRANSFORMS

__all__ = ["PadToSize", "RandomCropCatMax"]


def _hw(size: int | Sequence[int], name: str) -> tuple[int, int]:
    h, w = (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[1]))
    if h <= 0 or w <= 0:
        raise ValueError(f"{name}: size must be positive, got {size!r}")
    return h, w


@TRANSFORMS.register
class PadToSize:
    """Pad bottom/right up to at least ``size`` (h, w): image with ``pad_value``, sem_seg with 255, masks with 0.

    ``pad_offset`` stays (nothing is added before the content), so predictions map back unchanged.
    """

    def __init__(self, size: int | Sequence[int], pad_value: Any = 0):
        self.size = _hw(size, "PadToSize")
        self.pad_value = pad_value

    def __call__(self, sample: dict) -> dict:
        h, w = sample["image"].shape[:2]
        return pad_sample(sample, 0, max(0, self.size[0] - h), 0, max(0, self.size[1] - w), self.pad_value)

    def __repr__(self) -> str:
        return f"PadToSize(size={self.size}, pad_value={self.pad_value})"


@TRANSFORMS.register
class RandomCropCatMax:
    """Random ``crop_size`` crop in which no single class covers more than ``cat_max_ratio`` of the labelled pixels.

    As MMSegmentation's ``RandomCrop``: up to ``max_tries`` crops are drawn; the first whose largest class
    share (ignore pixels excluded) is below ``cat_max_ratio`` and that holds at least two classes is kept,
    else the last one. ``cat_max_ratio >= 1`` is a plain random crop. An image smaller than the crop is
    first padded bottom/right (image ``pad_value``, ``sem_seg`` 255 = ignore, masks 0). Boxes and instance
    masks are cropped too. Like the albumentations crops it is a training transform: ``scale_factor`` and
    ``pad_offset`` are left as they are.

    Args:
        crop_size: (h, w) or an int.
        cat_max_ratio: the cap on one class's share of the non-ignored pixels.
        ignore_index: label value left out of the shares.
        max_tries: crops drawn before giving up. pad_value: image fill of the padding.
    """

    def __init__(
        self,
        crop_size: int | Sequence[int],
        cat_max_ratio: float = 0.75,
        ignore_index: int = SEM_IGNORE,
        max_tries: int = 10,
        pad_value: Any = 0,
    ):
        self.crop_size = _hw(crop_size, "RandomCropCatMax")
        self.cat_max_ratio, self.ignore_index = float(cat_max_ratio), int(ignore_index)
        self.max_tries, self.pad_value = max(1, int(max_tries)), pad_value
        self.rng = np.random.default_rng()

    def _draw(self, h: int, w: int) -> tuple[int, int]:
        ch, cw = self.crop_size
        return int(self.rng.integers(0, h - ch + 1)), int(self.rng.integers(0, w - cw + 1))

    def _ok(self, sem: np.ndarray) -> bool:
        vals = sem[sem != self.ignore_index]
        if vals.size == 0:
            return False
        counts = np.bincount(vals.ravel().astype(np.int64))
        counts = counts[counts > 0]
        return len(counts) > 1 and counts.max() / counts.sum() < self.cat_max_ratio

    def __call__(self, sample: dict) -> dict:
        ch, cw = self.crop_size
        h, w = sample["image"].shape[:2]
        sample = pad_sample(sample, 0, max(0, ch - h), 0, max(0, cw - w), self.pad_value)
        h, w = sample["image"].shape[:2]
        sem = sample.get("sem_seg")
        y0, x0 = self._draw(h, w)
        if sem is not None and self.cat_max_ratio < 1.0:
            sem = np.asarray(sem)
            for _ in range(self.max_tries - 1):
                if self._ok(sem[y0 : y0 + ch, x0 : x0 + cw]):
                    break
                y0, x0 = self._draw(h, w)
        return self.crop(sample, y0, x0)

    def crop(self, sample: dict, y0: int, x0: int) -> dict:
        """Crop every array of ``sample`` to ``[y0:y0+h, x0:x0+w]`` (boxes shifted, clipped, empty ones dropped)."""
        ch, cw = self.crop_size
        out = dict(sample)
        out["image"] = np.ascontiguousarray(sample["image"][y0 : y0 + ch, x0 : x0 + cw])
        if out.get("sem_seg") is not None:
            out["sem_seg"] = np.ascontiguousarray(np.asarray(out["sem_seg"])[y0 : y0 + ch, x0 : x0 + cw])
        if out.get("masks") is not None:
            out["masks"] = np.ascontiguousarray(np.asarray(out["masks"])[:, y0 : y0 + ch, x0 : x0 + cw])
        if out.get("boxes") is not None:
            out["boxes"] = np.asarray(out["boxes"], np.float32).reshape(-1, 4) - np.array([x0, y0, x0, y0], np.float32)
        return sanitize_instances(out)

    def __repr__(self) -> str:
        return (
            f"RandomCropCatMax(crop_size={self.crop_size}, cat_max_ratio={self.cat_max_ratio}, "
            f"ignore_index={self.ignore_index})"
        )
