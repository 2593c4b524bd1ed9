"""Collate numpy samples into the torch batch of docs/contracts.md (uint8 images padded bottom/right)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["collate"]

SEM_IGNORE = 255


def _tensor(arr, dtype: np.dtype) -> torch.Tensor:
    """``torch.from_numpy`` without a copy when ``arr`` already has ``dtype`` and is contiguous."""
    arr = np.asarray(arr)
    if arr.dtype == np.bool_ and dtype == np.uint8:
        arr = arr.view(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=dtype))


def _target(sample: dict, pad_hw: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Per-image target dict: boxes float32 [N,4], labels int64 [N], masks uint8 [N,h,w], sem_seg int64 [H,W]."""
    t: dict[str, torch.Tensor] = {}
    if "boxes" in sample or "labels" in sample:
        t["boxes"] = _tensor(sample.get("boxes", np.zeros((0, 4), np.float32)), np.float32).reshape(-1, 4)
        t["labels"] = _tensor(sample.get("labels", np.zeros(0, np.int64)), np.int64).reshape(-1)
    if sample.get("masks") is not None:
        t["masks"] = _tensor(sample["masks"], np.uint8)
    if sample.get("sem_seg") is not None:
        sem = np.asarray(sample["sem_seg"])
        padded = np.full(pad_hw, SEM_IGNORE, dtype=np.int64)
        padded[: sem.shape[0], : sem.shape[1]] = sem
        t["sem_seg"] = torch.from_numpy(padded)
    for k in ("iscrowd",):
        if sample.get(k) is not None:
            t[k] = torch.from_numpy(np.asarray(sample[k]))
    return t


def collate(samples: Sequence[dict | None], size_divisor: int = 32) -> dict | None:
    """Stack samples into a batch; drop ``None`` samples (images that failed to decode).

    Args:
        samples: sample dicts (numpy, docs/contracts.md) or ``None``.
        size_divisor: pad the batch height and width up to a multiple of this (<= 1: no rounding).
    Returns:
        ``images`` uint8 ``[B,3,H,W]`` (zeros bottom/right), ``image_sizes``, ``orig_sizes``, ``targets``,
        ``image_ids``, ``scale_factors``, ``pad_offsets``, ``num_skipped``, ``batch_slots`` (the position of each
        image in ``samples``: its place in this process's share of a global batch); ``None`` when every
        sample is None.
    """
    good = [s for s in samples if s is not None]
    if not good:
        return None
    sizes = []
    for s in good:
        img = s["image"]
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(
                f"collate: image {s.get('image_id')} must be uint8 [H,W,3], got {img.dtype} {tuple(img.shape)}"
            )
        sizes.append((int(img.shape[0]), int(img.shape[1])))
    div = max(1, int(size_divisor))
    pad_h = -(-max(h for h, _ in sizes) // div) * div
    pad_w = -(-max(w for _, w in sizes) // div) * div
    # numpy fill / HWC->CHW copy: single-threaded and ~10x faster than torch.zeros / permute().copy_()
    # when torch's intra-op threads compete for busy cores (num_workers=0 runs in the main process)
    view = np.zeros((len(good), 3, pad_h, pad_w), dtype=np.uint8)
    for i, (s, (h, w)) in enumerate(zip(good, sizes)):
        view[i, :, :h, :w] = s["image"].transpose(2, 0, 1)  # the only copy of the image
    images = torch.from_numpy(view)
    return {
        "images": images,
        "image_sizes": sizes,
        "orig_sizes": [tuple(int(v) for v in s.get("orig_size", hw)) for s, hw in zip(good, sizes)],
        "targets": [_target(s, (pad_h, pad_w)) for s in good],
        "image_ids": [int(s["image_id"]) if s.get("image_id") is not None else -1 for s in good],
        "scale_factors": [tuple(float(v) for v in s.get("scale_factor", (1.0, 1.0))) for s in good],
        "pad_offsets": [tuple(float(v) for v in s.get("pad_offset", (0, 0))) for s in good],
        "num_skipped": len(samples) - len(good),
        "batch_slots": [i for i, s in enumerate(samples) if s is not None],
    }
