"""RoIAlign of channels_last maps as weighted sums of pixel rows (``F.embedding_bag``), torchvision's numerics.

A channels_last map [B,C,H,W] is, in memory, a table of B*H*W rows of C channels. torchvision's RoIAlign
(``aligned=False``, a fixed sampling ratio g) averages g*g bilinear samples per output bin, each sample a
weighted sum of 4 pixels: a bin is one bag of 4*g*g (row, weight) pairs, and a level's pooled features are
one ``embedding_bag(mode='sum')`` call over the table, a view of the map (no copy). Its backward adds the
rows' gradients into a dense table, which is the map's gradient in channels_last.

Against torchvision's CPU kernels, which loop over RoIs, channels, bins and samples and recompute the
bilinear weights for every channel, this reads the map in its own layout (no NCHW copy) and vectorises over
channels: a Mask R-CNN R50-FPN step at 2 x 512x512 pools in a fraction of the time (docs/benchmarks.md).
Sample points, clamping and weights follow torchvision's ``roi_align_kernel.cpp`` operation by operation in
the map's dtype; only the summation order differs (a few float32 ulps).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from detkit.ops.layout import capturing_graph, is_channels_last


def rows_ok(x: Tensor, sampling_ratio: int) -> bool:
    """Whether :func:`roi_align_rows` serves ``x``: a channels_last float32 / float64 CPU map, a fixed sampling
    ratio, not while tracing, scripting, exporting or compiling (those keep torchvision's op)."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or sampling_ratio <= 0:
        return False
    return is_channels_last(x) and not capturing_graph()


def _axis(v: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """torchvision's bilinear set-up along one axis: (inside, low, high, weight of low, weight of high)."""
    inside = (v >= -1.0) & (v <= size)
    v = v.clamp(min=0)
    low = v.long()  # truncation of a non-negative value, as the kernel's (int) cast
    top = low >= size - 1
    low = low.clamp(max=size - 1)
    high = torch.where(top, low, low + 1)
    v = torch.where(top, low.to(v.dtype), v)
    frac = v - low
    return inside, low, high, 1.0 - frac, frac


def bilinear_bags(
    rois: Tensor, output_size: int, spatial_scale: float, sampling_ratio: int, height: int, width: int
) -> tuple[Tensor, Tensor]:
    """Rows and weights of torchvision's RoIAlign samples in a [B*H*W, C] table.

    Args:
        rois: [R,5] (image index, x1, y1, x2, y2) in input pixels, in the map's dtype.
        output_size: S; spatial_scale: 1 / stride; sampling_ratio: g > 0; height, width: the map's H, W.

    Returns:
        indices int64 [R*S*S, 4*g*g] (bins in row-major order per RoI) and weights [R*S*S, 4*g*g]
        (bilinear weight / g*g; zero for samples outside the map, whose row is 0).
    """
    s, g = output_size, sampling_ratio
    start = rois[:, 1:3] * spatial_scale  # [R,2] (x, y)
    extent = torch.clamp(rois[:, 3:5] * spatial_scale - start, min=1.0)
    bin_size = extent / s
    bins = torch.arange(s, dtype=rois.dtype, device=rois.device)
    grid = torch.arange(g, dtype=rois.dtype, device=rois.device) + 0.5
    # start + p * bin + (i + .5) * bin / g, in the kernel's order: [R,2,S,g]
    points = (
        start[:, :, None, None]
        + bins[None, None, :, None] * bin_size[:, :, None, None]
        + grid[None, None, None, :] * bin_size[:, :, None, None] / g
    )
    in_x, x_low, x_high, wx_low, wx_high = _axis(points[:, 0], width)  # [R,S,g]
    in_y, y_low, y_high, wy_low, wy_high = _axis(points[:, 1], height)

    def ys(t: Tensor) -> Tensor:  # [R,S,g] along y -> [R,Sy,1,gy,1]
        return t[:, :, None, :, None]

    def xs(t: Tensor) -> Tensor:  # [R,S,g] along x -> [R,1,Sx,1,gx]
        return t[:, None, :, None, :]

    first = (rois[:, 0].long() * (height * width))[:, None, None, None, None]
    row_low, row_high = ys(y_low) * width + first, ys(y_high) * width + first
    index = torch.stack([row_low + xs(x_low), row_low + xs(x_high), row_high + xs(x_low), row_high + xs(x_high)], -1)
    weight = torch.stack(
        [
            ys(wy_low) * xs(wx_low),
            ys(wy_low) * xs(wx_high),
            ys(wy_high) * xs(wx_low),
            ys(wy_high) * xs(wx_high),
        ],
        -1,
    )  # [R,Sy,Sx,gy,gx,4]
    inside = (ys(in_y) & xs(in_x))[..., None]
    weight = torch.where(inside, weight / (g * g), 0.0)  # g*g a power of two for g = 1, 2, 4: exact
    index = torch.where(inside, index, 0)
    return index.reshape(-1, 4 * g * g), weight.reshape(-1, 4 * g * g)


def roi_align_rows(x: Tensor, rois: Tensor, output_size: int, spatial_scale: float, sampling_ratio: int) -> Tensor:
    """``torchvision.ops.roi_align`` (aligned=False) of a channels_last map, channels innermost.

    Args:
        x: [B,C,H,W] channels_last (:func:`rows_ok`); rois: [R,5] (image index, x1, y1, x2, y2).

    Returns:
        [R,S,S,C] (permute(0, 3, 1, 2) gives torchvision's [R,C,S,S] in channels_last); differentiable
        in ``x``, whose gradient comes back channels_last.
    """
    b, c, h, w = x.shape
    table = x.permute(0, 2, 3, 1).reshape(b * h * w, c)  # a view of a channels_last map
    index, weight = bilinear_bags(rois.to(x.dtype), output_size, spatial_scale, sampling_ratio, h, w)
    pooled = F.embedding_bag(index, table, per_sample_weights=weight, mode="sum")  # [R*S*S, C]
    return pooled.view(rois.shape[0], output_size, output_size, c)
