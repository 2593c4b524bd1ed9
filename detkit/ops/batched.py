"""Batched, tensor-only selection steps shared by the heads' ``predict`` and the ONNX export wrappers.

Everything here works on whole batches without Python loops over images and computes sizes with tensor
ops, so that the same code runs eagerly in ``predict`` and traces into an ONNX graph whose batch and image
sizes stay dynamic. Per-image results come out padded to a fixed count per image (``[B,K,...]``) with the
number of filled slots per image; :func:`unpad` turns them back into per-image lists.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.ops import nms


def topk_count(n: int | Tensor, k: int) -> int | Tensor:
    """``min(n, k)`` for a size ``n`` that is an int, or a traced 0-d tensor while exporting (then a tensor)."""
    return n.clamp(max=k) if isinstance(n, Tensor) else min(int(n), int(k))


def sizes_tensor(image_sizes: Sequence[Sequence[int]] | Tensor, device: torch.device | str | None = None) -> Tensor:
    """Per-image (h, w) as int64 [B,2] (a tensor is passed through, moved to ``device``)."""
    if isinstance(image_sizes, Tensor):
        return image_sizes.to(device=device, dtype=torch.int64)
    return torch.tensor([[int(s[0]), int(s[1])] for s in image_sizes], dtype=torch.int64, device=device).reshape(-1, 2)


def clip_to_sizes(boxes: Tensor, limits: Tensor) -> Tensor:
    """Clip xyxy boxes [..., 4] to ``[0, w] x [0, h]``; ``limits`` [..., 4] holds (w, h, w, h), broadcastable."""
    return torch.minimum(boxes.clamp(min=0), limits.to(boxes.dtype))


def box_limits(image_sizes: Tensor) -> Tensor:
    """(w, h, w, h) float32 [B,4] for int64 sizes [B,2] given as (h, w)."""
    h, w = image_sizes[:, 0], image_sizes[:, 1]
    return torch.stack([w, h, w, h], 1).to(torch.float32)


def per_image_topk(image_idx: Tensor, num_images: Tensor | int, k: int) -> tuple[Tensor, Tensor]:
    """For items sorted by descending score, the ones among the first ``k`` of their image.

    Args:
        image_idx: int64 [M], the image of each item (items in descending score order).
        num_images: the batch size B.
        k: items kept per image.

    Returns:
        (sel int64 [M'] indices of the kept items, dest int64 [M'] their slot ``image * k + rank``).
    """
    onehot = (image_idx[:, None] == torch.arange(num_images, device=image_idx.device)[None, :]).to(torch.int64)
    rank = (onehot.cumsum(0) * onehot).sum(1) - 1  # [M] rank within its image
    sel = torch.where(rank < k)[0]
    return sel, image_idx[sel] * k + rank[sel]


def sorted_top_per_image(scores: Tensor, image_idx: Tensor, num_images: int, k: int) -> Tensor:
    """The items that a stable descending sort of ``scores`` followed by :func:`per_image_topk` keeps, in that order.

    Each image's items beyond its ``k`` best are dropped before sorting: a top-k finds the image's k-th best
    score, items above it are kept and items equal to it in index order until k are kept (what the stable
    sort keeps), so the sort covers at most k items per image instead of all of them. Eager only (a loop
    over the images whose items exceed k).

    Args:
        scores [M]; image_idx int64 [M] non-decreasing (items grouped by image, as ``torch.where`` gives them).

    Returns:
        int64 [M'] indices into ``scores``, score-descending, ties in index order; at most ``k`` per image.
    """
    counts = count_per_image(image_idx, num_images).tolist()
    if max(counts, default=0) <= k:
        return scores.argsort(descending=True, stable=True)
    parts, start = [], 0
    for n in counts:
        if n > k:
            part = scores[start : start + n]
            kth = part.topk(k).values[-1]
            above, ties = part > kth, part == kth
            keep = above | (ties & (ties.cumsum(0) <= k - int(above.sum())))
            parts.append(torch.where(keep)[0] + start)
        else:
            parts.append(torch.arange(start, start + n, device=scores.device))
        start += n
    sel = torch.cat(parts)  # index order
    return sel[scores[sel].argsort(descending=True, stable=True)]


def scatter_rows(values: Tensor, dest: Tensor, slots: Tensor | int, fill: float) -> Tensor:
    """A [slots, *values.shape[1:]] tensor filled with ``fill``, ``values`` written at rows ``dest``."""
    out = values.new_zeros((slots,) + tuple(values.shape[1:]))  # (aten::full with a bool fill does not trace)
    if fill:
        out = out + fill
    return out.index_put((dest,), values)


def pad_per_image(
    values: Sequence[Tensor], fills: Sequence[float], dest: Tensor, num_images: Tensor | int, k: int
) -> list[Tensor]:
    """Write each of ``values`` ([M,...], rows in ``dest`` slots) into a [B,K,...] tensor filled with ``fills``."""
    return [
        scatter_rows(v, dest, num_images * k, f).reshape((num_images, k) + tuple(v.shape[1:]))
        for v, f in zip(values, fills)
    ]


def nms_by_image(
    boxes: Tensor, scores: Tensor, image_idx: Tensor, num_images: int, iou_thr: float, max_keep: int | None = None
) -> Tensor:
    """``torchvision.ops.nms`` of boxes whose images never overlap (shifted apart), computed image by image.

    NMS time grows with the square of its input, so eagerly each image runs alone (:func:`nms_first`, which
    stops once ``max_keep`` are kept); while tracing for export it is one call. Either way the kept set is
    the same (boxes of different images never suppress each other), cut to the first ``max_keep`` per image
    eagerly.

    Args:
        boxes [M,4], scores [M], image_idx int64 [M]: items in descending score order within each image.

    Returns:
        int64 [M'] kept indices, by descending score within each image.
    """
    if torch.jit.is_tracing():
        return nms(boxes, scores, iou_thr)
    order = torch.argsort(image_idx, stable=True)
    parts = order.split(count_per_image(image_idx, num_images).tolist())
    return torch.cat([idx[nms_first(boxes[idx], scores[idx], iou_thr, max_keep)] for idx in parts])


def nms_first(boxes: Tensor, scores: Tensor, iou_thr: float, max_keep: int | None = None) -> Tensor:
    """The first ``max_keep`` indices that ``torchvision.ops.nms`` keeps (all of them when None), exactly.

    NMS is greedy in score order, so whether an item is kept depends only on the items before it: NMS of the
    first ``m`` items keeps exactly the full NMS's kept items among them. Starting from ``m = 4 * max_keep``,
    ``m`` grows (by the kept rate seen so far, at least doubling) until ``max_keep`` are kept or all items
    are in; a YOLO head's thousands of candidates then cost a few hundred boxes' NMS instead of the square of
    their count. torchvision's NMS sorts stably, so ties keep their input order and the prefixes agree.

    Args:
        boxes [M,4], scores [M]: items in descending score order (ties in any order).

    Returns:
        int64 [K] kept indices, score-descending, K <= ``max_keep``.
    """
    n = boxes.shape[0]
    if max_keep is None:
        return nms(boxes, scores, iou_thr)
    m = 4 * max_keep
    while True:
        keep = nms(boxes[:m], scores[:m], iou_thr)
        if keep.shape[0] >= max_keep or m >= n:
            return keep[:max_keep]
        m = max(2 * m, int(1.25 * m * max_keep / max(keep.shape[0], 1)))


def count_per_image(image_idx: Tensor, num_images: Tensor | int) -> Tensor:
    """int64 [B]: how many of ``image_idx`` [M] belong to each image."""
    return (image_idx[:, None] == torch.arange(num_images, device=image_idx.device)[None, :]).sum(0)


def unpad(padded: dict[str, Tensor], counts: Tensor) -> list[dict[str, Tensor]]:
    """Per image ``{key: value[i, :counts[i]]}`` from padded [B,K,...] tensors."""
    return [{key: v[i, :n] for key, v in padded.items()} for i, n in enumerate(counts.tolist())]
