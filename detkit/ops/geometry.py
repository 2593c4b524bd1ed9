"""Map boxes between a transformed image and the original image (see docs/contracts.md, Sample)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _affine(scale_factor: Sequence[float], pad_offset: Sequence[float], like: Tensor) -> tuple[Tensor, Tensor]:
    """Return per-coordinate scale and offset tensors ``[4]`` for xyxy boxes."""
    sx, sy = float(scale_factor[0]), float(scale_factor[1])
    left, top = float(pad_offset[0]), float(pad_offset[1])
    scale = torch.tensor([sx, sy, sx, sy], dtype=like.dtype, device=like.device)
    offset = torch.tensor([left, top, left, top], dtype=like.dtype, device=like.device)
    return scale, offset


def boxes_to_original(
    boxes: Tensor, scale_factor: Sequence[float], pad_offset: Sequence[float], orig_size: Sequence[int]
) -> Tensor:
    """Map xyxy boxes from transformed-image pixels back to the original image and clip them to it.

    A coordinate maps as ``(x - left) / sx`` (``(y - top) / sy`` for y).

    Args:
        boxes: float ``[N,4]`` xyxy in the pixels of the transformed (resized / letterboxed) image.
        scale_factor: ``(sx, sy)``, transformed-image pixels per original pixel.
        pad_offset: ``(left, top)`` pixels added before the image content.
        orig_size: ``(h, w)`` of the original image.
    Returns:
        float ``[N,4]`` xyxy boxes in original-image pixels, clipped to ``[0, w] x [0, h]``.
    """
    if not boxes.is_floating_point():
        boxes = boxes.float()
    scale, offset = _affine(scale_factor, pad_offset, boxes)
    out = (boxes - offset) / scale
    h, w = float(orig_size[0]), float(orig_size[1])
    out[:, 0::2] = out[:, 0::2].clamp(0.0, w)
    out[:, 1::2] = out[:, 1::2].clamp(0.0, h)
    return out


def boxes_from_original(boxes: Tensor, scale_factor: Sequence[float], pad_offset: Sequence[float]) -> Tensor:
    """Map xyxy boxes from original-image pixels into the transformed image (inverse of ``boxes_to_original``).

    Args:
        boxes: float ``[N,4]`` xyxy in original-image pixels.
        scale_factor: ``(sx, sy)``, transformed-image pixels per original pixel.
        pad_offset: ``(left, top)`` pixels added before the image content.
    Returns:
        float ``[N,4]`` xyxy boxes in transformed-image pixels (not clipped).
    """
    if not boxes.is_floating_point():
        boxes = boxes.float()
    scale, offset = _affine(scale_factor, pad_offset, boxes)
    return boxes * scale + offset
