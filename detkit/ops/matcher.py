"""IoU-threshold matching of predictions to ground truth, torchvision ``Matcher`` semantics, batched."""

from __future__ import annotations

import torch
from torch import Tensor


class Matcher:
    """Assign each prediction (column) the ground-truth (row) it overlaps most, or a negative code.

    Args:
        high_threshold: quality >= this is a match (the gt index).
        low_threshold: quality < this is ``BELOW_LOW_THRESHOLD`` (-1); in between is
            ``BETWEEN_THRESHOLDS`` (-2).
        allow_low_quality_matches: also match, for every gt, the predictions of highest quality with it
            (ties included) even below ``high_threshold`` (to the gt each of them overlaps most).

    ``__call__(quality, valid=None)`` takes ``quality`` Tensor[M, N] or a batch Tensor[B, M, N]
    (padded gts marked False in ``valid`` Tensor[(B,) M]) and returns int64 Tensor[N] / [B, N].
    Unlike torchvision, zero gts is not an error: every prediction is ``BELOW_LOW_THRESHOLD``.
    """

    BELOW_LOW_THRESHOLD = -1
    BETWEEN_THRESHOLDS = -2

    def __init__(self, high_threshold: float, low_threshold: float, allow_low_quality_matches: bool = False):
        if low_threshold > high_threshold:
            raise ValueError(f"Matcher: low_threshold ({low_threshold}) must be <= high_threshold ({high_threshold})")
        self.high_threshold = float(high_threshold)
        self.low_threshold = float(low_threshold)
        self.allow_low_quality_matches = bool(allow_low_quality_matches)

    def __call__(self, quality: Tensor, valid: Tensor | None = None) -> Tensor:
        """Match; see the class docstring for shapes."""
        if quality.shape[-2] == 0:
            return torch.full(
                quality.shape[:-2] + quality.shape[-1:],
                self.BELOW_LOW_THRESHOLD,
                dtype=torch.int64,
                device=quality.device,
            )
        if valid is not None:
            # padded gts can never win a prediction
            quality = quality.masked_fill(~valid[..., None], -1.0)
        matched_vals, all_matches = quality.max(dim=-2)  # [..., N]
        below = matched_vals < self.low_threshold
        between = (matched_vals >= self.low_threshold) & (matched_vals < self.high_threshold)
        matches = torch.where(
            below, self.BELOW_LOW_THRESHOLD, torch.where(between, self.BETWEEN_THRESHOLDS, all_matches)
        )

        if self.allow_low_quality_matches:
            # for each gt, the predictions of (tied) highest quality keep their best gt
            highest = quality.max(dim=-1, keepdim=True).values  # [..., M, 1]
            if valid is not None:  # padded gts have no best prediction
                highest = highest.masked_fill(~valid[..., None], float("inf"))
            update = (quality == highest).any(dim=-2)  # [..., N]
            matches = torch.where(update, all_matches, matches)
        return matches
