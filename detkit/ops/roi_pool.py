"""Multi-scale RoIAlign over FPN levels: torchvision's ``MultiScaleRoIAlign`` numerics, for lists or padded boxes.

One function for training, ``predict`` and ONNX export: the level of each RoI follows torchvision's
``LevelMapper`` (canonical size 224 at level 4), every level is pooled with ``torchvision.ops.roi_align``
at scale ``1 / stride``, and the levels merge with ``index_put`` (which traces with dynamic sizes).

Channels_last CPU maps (the channels_last training steps, the CPU inference fast path) are pooled by
:func:`detkit.ops.roi_rows.roi_align_rows`, as weighted sums of the map's pixel rows: no NCHW copy, a
channels_last gradient, several times faster than torchvision's CPU kernels. On NCHW maps, on a CPU with
more than one thread, :func:`roi_align` runs torchvision's kernels on channel groups in parallel
threads: its CPU forward and backward are serial loops (the backward was 22% of a Faster R-CNN R50-FPN
training step on 2 cores), and channels are independent, so each group's result is bit-identical to the
group's slice of the whole.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor
from torchvision.ops import roi_align as tv_roi_align
from torchvision.ops.poolers import LevelMapper

from detkit.ops.layout import capturing_graph
from detkit.ops.roi_rows import roi_align_rows, rows_ok

MIN_GROUP_CHANNELS = 16  # fewer channels per thread than this: one call (thread overhead ~0.1 ms per group)
_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, workers, pool); remade after a fork


def _threads() -> ThreadPoolExecutor:
    global _pool
    n = torch.get_num_threads()
    if _pool is None or _pool[0] != os.getpid() or _pool[1] != n:
        _pool = (os.getpid(), n, ThreadPoolExecutor(n, thread_name_prefix="detkit-roi-align"))
    return _pool[2]


def _groups(channels: int) -> list[slice]:
    n = max(1, min(torch.get_num_threads(), channels // MIN_GROUP_CHANNELS))
    bounds = [round(i * channels / n) for i in range(n + 1)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def _parallel_ok(x: Tensor, rois: Tensor) -> bool:
    """Whether the channel groups run in threads (autocast is handled by :func:`roi_align` before this)."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or rois.dtype != x.dtype:
        return False
    if capturing_graph() or rois.shape[0] == 0:  # (sizes may be traced tensors while capturing)
        return False
    return len(_groups(x.shape[1])) >= 2


class _ChannelParallelRoIAlign(torch.autograd.Function):
    """torchvision's RoIAlign forward and backward, each channel group in its own thread."""

    @staticmethod
    def forward(ctx, x: Tensor, rois: Tensor, size: int, scale: float, sampling_ratio: int) -> Tensor:
        ctx.save_for_backward(rois)
        ctx.args = (x.shape, size, scale, sampling_ratio)
        return _pooled(x, rois, size, scale, sampling_ratio)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (rois,) = ctx.saved_tensors
        (b, c, h, w), size, scale, ratio = ctx.args
        kernel = torch.ops.torchvision._roi_align_backward

        def one(g: slice) -> Tensor:
            part = grad[:, g].contiguous()
            return kernel(part, rois, scale, size, size, b, g.stop - g.start, h, w, ratio, False)

        return torch.cat(list(_threads().map(one, _groups(c))), 1), None, None, None, None


def _pooled(x: Tensor, rois: Tensor, size: int, scale: float, sampling_ratio: int) -> Tensor:
    def one(g: slice) -> Tensor:
        with torch.no_grad():  # grad mode is per thread: the workers' results carry no graph
            return tv_roi_align(x[:, g], rois, size, scale, sampling_ratio)

    return torch.cat(list(_threads().map(one, _groups(x.shape[1]))), 1)


def roi_align(x: Tensor, rois: Tensor, output_size: int, spatial_scale: float, sampling_ratio: int) -> Tensor:
    """``torchvision.ops.roi_align(x, rois, output_size, spatial_scale, sampling_ratio)`` (aligned=False).

    Args:
        x: [B, C, H, W]; rois: [R, 5] (image index, x1, y1, x2, y2) in input pixels.

    Returns:
        [R, C, S, S]: channels_last for a channels_last CPU map (:func:`~detkit.ops.roi_rows.rows_ok`, the same
        values up to float summation order); otherwise, on a CPU with several threads (float32 / float64, or float32 under autocast, as
        torchvision's autocast kernel computes; not while tracing or compiling) channel groups run in parallel
        threads, forward and backward: the same values bit for bit.
    """
    if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):  # what torchvision's autocast kernel does
        with torch.autocast("cpu", enabled=False):
            return roi_align(x.float(), rois.float(), output_size, spatial_scale, sampling_ratio).to(x.dtype)
    if rows_ok(x, sampling_ratio):
        return roi_align_rows(x, rois, output_size, spatial_scale, sampling_ratio).permute(0, 3, 1, 2)
    if not _parallel_ok(x, rois):
        return tv_roi_align(x, rois, output_size, spatial_scale, sampling_ratio=sampling_ratio)
    if torch.is_grad_enabled() and x.requires_grad:
        return _ChannelParallelRoIAlign.apply(x, rois, output_size, spatial_scale, sampling_ratio)
    return _pooled(x, rois, output_size, spatial_scale, sampling_ratio)


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
        [R, C, S, S] pooled features (S = ``output_size``), channels_last when the maps are (:func:`roi_align`).
    """
    if feats[0].dtype == torch.float64:  # a float64 model (model.double()): boxes in its precision
        rois = rois.to(torch.float64)
    if len(strides) == 1:
        return roi_align(feats[0], rois, output_size, 1.0 / strides[0], sampling_ratio)
    mapper = LevelMapper(int(math.log2(strides[0])), int(math.log2(strides[-1])))
    levels = mapper([rois[:, 1:]])  # [R]
    first, n, s = feats[0], rois.shape[0], output_size
    rows = all(rows_ok(f, sampling_ratio) for f in feats[: len(strides)])  # pooled [R_l,S,S,C]: one RoI, one block
    out = first.new_zeros((n, s, s, first.shape[1]) if rows else (n, first.shape[1], s, s))
    pool = roi_align_rows if rows else roi_align
    for lvl, (f, stride) in enumerate(zip(feats[: len(strides)], strides)):
        idx = torch.where(levels == lvl)[0]
        out.index_put_((idx,), pool(f, rois[idx], s, 1.0 / stride, sampling_ratio).to(out.dtype))
    return out.permute(0, 3, 1, 2) if rows else out
