"""Multi-scale RoIAlign over FPN levels: torchvision's ``MultiScaleRoIAlign`` numerics, for lists or padded boxes.

One function for training, ``predict`` and ONNX export: the level of each RoI follows torchvision's
``LevelMapper`` (canonical size 224 at level 4), every level is pooled with ``torchvision.ops.roi_align``
at scale ``1 / stride``, and the levels merge with ``index_put`` (which traces with dynamic sizes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.ops import roi_align
from torchvision.ops.poolers import LevelMapper


def boxes_to_rois(boxes: Sequence[Tensor] | Tensor) -> Tensor:
    """RoIs [R,5] (image index, x1, y1, x2, y2) from per-image boxes [K_i,4] or padded boxes [B,K,4]."""
    if isinstance(boxes, Tensor):
        b, k = boxes.shape[0], boxes.shape[1]
        flat = boxes.reshape(-1, 4)
        image = torch.arange(b, device=boxes.device)[:, None].expand(b, k).reshape(-1, 1).to(flat.dtype)
        return torch.cat([image, flat], 1)
    ids = [torch.full_like(b[:, :1], i) for i, b in enumerate(boxes)]
    return torch.cat([torch.cat(ids), torch.cat(list(boxes))], 1)


def multiscale_roi_align(
    feats: Sequence[Tensor], rois: Tensor, strides: Sequence[int], output_size: int, sampling_ratio: int
) -> Tensor:
    """RoIAlign ``rois`` [R,5] from the first ``len(strides)`` maps, each RoI from its FPN level.

    Args:
        feats: maps [B,C,H_l,W_l] with ``strides`` (powers of two, increasing).
        rois: [R,5] (image index, x1, y1, x2, y2) in input pixels (:func:`boxes_to_rois`).
        output_size, sampling_ratio: RoIAlign settings.

    Returns:
        [R, C, S, S] pooled features (S = ``output_size``).
    """
    if feats[0].dtype == torch.float64:  # a float64 model (model.double()): boxes in its precision
        rois = rois.to(torch.float64)
    if len(strides) == 1:
        return roi_align(feats[0], rois, output_size, 1.0 / strides[0], sampling_ratio=sampling_ratio)
    mapper = LevelMapper(int(math.log2(strides[0])), int(math.log2(strides[-1])))
    levels = mapper([rois[:, 1:]])  # [R]
    first = feats[0]
    out = first.new_zeros((rois.shape[0], first.shape[1], output_size, output_size))
    for lvl, (f, s) in enumerate(zip(feats[: len(strides)], strides)):
        idx = torch.where(levels == lvl)[0]
        pooled = roi_align(f, rois[idx], output_size, 1.0 / s, sampling_ratio=sampling_ratio)  # [R_l,C,S,S]
        out.index_put_((idx,), pooled.to(out.dtype))
    return out
