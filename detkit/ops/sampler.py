"""Balanced positive/negative sampling (torchvision's ``BalancedPositiveNegativeSampler``), batched."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _take_random(candidates: Tensor, count: Tensor, k_max: int, keys: Tensor) -> Tensor:
    """Mask of ``count[b]`` uniformly random True entries of ``candidates[b]`` (k_max >= count)."""
    out = torch.zeros_like(candidates)
    k = min(k_max, candidates.shape[-1])
    if k <= 0:
        return out
    # top-k of i.i.d. uniform keys restricted to the candidates = a uniform random subset
    _, idx = torch.where(candidates, keys, -1.0).topk(k, dim=-1)  # [B, k]
    chosen = torch.arange(k, device=candidates.device) < count[:, None]  # [B, k]
    return out.scatter_(-1, idx, chosen)


def sample_pos_neg(
    labels: Tensor,
    batch_size_per_image: int,
    positive_fraction: float,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> tuple[Tensor, Tensor]:
    """Pick at most ``batch_size_per_image`` elements per image, a ``positive_fraction`` of them positive.

    Args:
        labels: Tensor[N] or Tensor[B, N]: ``>= 1`` positive, ``0`` negative, ``< 0`` ignored.
        batch_size_per_image: sampled elements per image (fewer when there are not enough).
        positive_fraction: the largest share of positives; negatives fill the rest.
        generator: optional ``torch.Generator`` (on ``labels``' device) for reproducible draws, or one per
            image (a sequence of B): then image ``b``'s subset depends on ``generator[b]`` alone, whatever
            the other images of the batch (``detkit.ops.global_batch.draw_generators``).

    Returns:
        (pos_mask, neg_mask): bool tensors shaped like ``labels``.
    """
    squeeze = labels.dim() == 1
    lab = labels[None] if squeeze else labels  # [B, N]
    pos = lab >= 1
    neg = lab == 0
    max_pos = int(batch_size_per_image * positive_fraction)
    num_pos = pos.sum(-1).clamp(max=max_pos)
    num_neg = torch.minimum(neg.sum(-1), batch_size_per_image - num_pos)
    if generator is None or isinstance(generator, torch.Generator):
        keys = torch.rand(lab.shape, generator=generator, device=lab.device)
    else:
        if len(generator) != lab.shape[0]:
            raise ValueError(f"sample_pos_neg: {len(generator)} generators for {lab.shape[0]} images")
        keys = torch.stack([torch.rand(lab.shape[1], generator=g, device=lab.device) for g in generator])
    pos_mask = _take_random(pos, num_pos, max_pos, keys)
    neg_mask = _take_random(neg, num_neg, batch_size_per_image, keys)
    if squeeze:
        return pos_mask[0], neg_mask[0]
    return pos_mask, neg_mask
