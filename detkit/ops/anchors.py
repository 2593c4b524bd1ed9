"""Anchor boxes for R-CNN style heads, numerically identical to torchvision's ``AnchorGenerator``."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import Tensor

_CACHE: OrderedDict[tuple, list[Tensor]] = OrderedDict()
_CACHE_SIZE = 64


def base_anchors(
    sizes: Sequence[float],
    aspect_ratios: Sequence[float],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Zero-centred anchors, one per (aspect ratio, size) pair, rounded like torchvision.

    ``aspect_ratio = height / width``; the order is ratio-major (for each ratio, every size).

    Returns:
        Tensor[len(aspect_ratios) * len(sizes), 4]: xyxy boxes centred on (0, 0).
    """
    scales = torch.as_tensor(sizes, dtype=dtype, device=device)
    ratios = torch.as_tensor(aspect_ratios, dtype=dtype, device=device)
    h_ratios = torch.sqrt(ratios)
    w_ratios = 1 / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).view(-1)
    hs = (h_ratios[:, None] * scales[None, :]).view(-1)
    return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()


def anchor_strides(image_size: Sequence[int], feature_sizes: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """Per-level ``(stride_y, stride_x)`` as torchvision computes them: padded image size // feature size."""
    h, w = int(image_size[0]), int(image_size[1])
    return [(h // int(fh), w // int(fw)) for fh, fw in feature_sizes]


def grid_anchors(base: Tensor, feature_size: Sequence[int], stride: Sequence[int]) -> Tensor:
    """Tile ``base`` anchors [A,4] over a feature map of ``feature_size`` (h, w) with ``stride`` (sy, sx).

    Returns:
        Tensor[h * w * A, 4]: location-major (row, then column), then anchor.
    """
    # no int() casts: while tracing for ONNX export, sizes and strides are traced tensors (dynamic shapes)
    fh, fw = feature_size[0], feature_size[1]
    sy, sx = stride[0], stride[1]
    # integer shifts are exact in float, so this equals torchvision's int32 arithmetic bit for bit
    shifts_x = torch.arange(fw, dtype=torch.int32, device=base.device) * sx
    shifts_y = torch.arange(fh, dtype=torch.int32, device=base.device) * sy
    shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
    shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
    shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)  # [h*w, 4]
    return (shifts.view(-1, 1, 4) + base.view(1, -1, 4)).reshape(-1, 4)


def make_anchors(
    feature_sizes: Sequence[Sequence[int]],
    strides: Sequence[Sequence[int] | int],
    sizes: Sequence[Sequence[float]],
    aspect_ratios: Sequence[Sequence[float]] | Sequence[float],
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> list[Tensor]:
    """Anchors for every feature level, cached per (shapes, strides, sizes, ratios, device, dtype).

    Args:
        feature_sizes: per level ``(h, w)``.
        strides: per level ``(stride_y, stride_x)`` or an int; see :func:`anchor_strides`.
        sizes: per level a tuple of anchor sizes (e.g. ``((32,), (64,), ...)``).
        aspect_ratios: per level a tuple of ratios, or one tuple shared by every level.

    Returns:
        list of Tensor[h_l * w_l * A_l, 4], xyxy in padded-image pixels. The tensors are shared
        through the cache: never modify them in place.
    """
    if len(aspect_ratios) and not isinstance(aspect_ratios[0], (list, tuple)):
        aspect_ratios = [tuple(aspect_ratios)] * len(sizes)
    if not (len(feature_sizes) == len(strides) == len(sizes) == len(aspect_ratios)):
        raise ValueError(
            f"make_anchors: got {len(feature_sizes)} feature maps, {len(strides)} strides, "
            f"{len(sizes)} anchor size tuples and {len(aspect_ratios)} aspect ratio tuples; "
            "give one anchor size tuple per feature level"
        )
    strides = [(s, s) if isinstance(s, int) else tuple(int(v) for v in s) for s in strides]
    device = torch.device(device)
    key = (
        tuple(tuple(int(v) for v in f) for f in feature_sizes),
        tuple(strides),
        tuple(tuple(float(v) for v in s) for s in sizes),
        tuple(tuple(float(v) for v in r) for r in aspect_ratios),
        str(device),
        dtype,
    )
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit
    out = []
    for fsize, stride, s, r in zip(feature_sizes, strides, sizes, aspect_ratios):
        # torchvision builds the cell anchors in float32 and casts them to the feature dtype
        base = base_anchors(s, r, torch.float32, device).to(dtype)
        out.append(grid_anchors(base, fsize, stride))
    _CACHE[key] = out
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return out
