"""Anchor points of anchor-free heads and the distance (ltrb) box coding around them."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def anchor_points(
    shapes: Sequence[tuple[int, int]],
    strides: Sequence[int],
    device=None,
    dtype: torch.dtype = torch.float32,
    offset: float = 0.5,
) -> tuple[Tensor, Tensor]:
    """Cell centres of every level, in input pixels, level by level, row-major.

    Args:
        shapes: (H_l, W_l) of each level's map.
        strides: stride of each level.

    Returns:
        points [A,2] (x, y) in pixels and strides [A,1], A = sum of H_l * W_l.
    """
    pts, strs = [], []
    for (h, w), s in zip(shapes, strides):
        ys = (torch.arange(h, device=device, dtype=dtype) + offset) * s
        xs = (torch.arange(w, device=device, dtype=dtype) + offset) * s
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        pts.append(torch.stack([xx.reshape(-1), yy.reshape(-1)], -1))
        strs.append(torch.full((h * w, 1), float(s), device=device, dtype=dtype))
    return torch.cat(pts), torch.cat(strs)


def maps_to_anchors(maps: Sequence[Tensor]) -> Tensor:
    """Per-anchor values [B,A,C] from per-level maps [B,C,H_l,W_l], in :func:`anchor_points`' order.

    NCHW maps are concatenated along the flattened pixels and transposed (a view of [B,C,A]); maps whose
    channels are innermost in memory (channels_last maps of CPU training steps, or channel slices of them) are
    [B,H,W,C] views already, so they are concatenated along the anchors into a contiguous [B,A,C], one straight
    copy (transposing them to [B,C,A] first took 1.6x as long: 17.5 vs 10.8 ms for YOLO's 8x144-channel maps
    at 640). The values are the same either way.
    """
    if all(m.dim() == 4 and m.stride(1) == 1 for m in maps):
        return torch.cat([m.permute(0, 2, 3, 1).flatten(1, 2) for m in maps], 1)
    return torch.cat([m.flatten(2) for m in maps], 2).transpose(1, 2)


def distance_to_boxes(points: Tensor, distance: Tensor) -> Tensor:
    """Boxes xyxy [...,4] from centres [...,2] and (left, top, right, bottom) distances [...,4]."""
    lt, rb = distance.chunk(2, -1)
    return torch.cat([points - lt, points + rb], -1)


def boxes_to_distance(points: Tensor, boxes: Tensor, max_dist: float | None = None) -> Tensor:
    """(left, top, right, bottom) distances [...,4] from centres [...,2] to boxes xyxy [...,4], optionally clamped."""
    x1y1, x2y2 = boxes.chunk(2, -1)
    d = torch.cat([points - x1y1, x2y2 - points], -1)
    return d.clamp(0, max_dist) if max_dist is not None else d
