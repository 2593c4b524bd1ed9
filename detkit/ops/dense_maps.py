"""Layouts of per-anchor prediction maps (RPN style: A anchors per location, anchor-minor order)."""

from __future__ import annotations

import torch
from torch import Tensor


def flat_objectness(o: Tensor) -> Tensor:
    """[B, A, H, W] -> [B, H*W*A] (anchor order of :func:`make_anchors`)."""
    return o.permute(0, 2, 3, 1).reshape(o.shape[0], -1)


def flat_deltas(d: Tensor) -> Tensor:
    """[B, A*4, H, W] -> [B, H*W*A, 4]."""
    b, a4, h, w = d.shape
    return d.view(b, a4 // 4, 4, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, 4)


def take_deltas(d: Tensor, idx: Tensor) -> Tensor:
    """``flat_deltas(d)[b, idx[b]]`` without reordering the whole map: [B, A*4, H, W], [B, k] -> [B, k, 4]."""
    b, a4, h, w = d.shape
    a = a4 // 4
    batch = torch.arange(b, device=d.device)[:, None]
    return d.view(b, a, 4, h * w)[batch, idx % a, :, idx // a]
