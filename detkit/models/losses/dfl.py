"""Distribution focal loss (Generalized Focal Loss), which torchvision.ops lacks."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def distribution_focal_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy against the two bins around a continuous target, weighted by closeness.

    Args:
        logits: [N,R] logits over R bins (0..R-1).
        target: [N] continuous targets in [0, R-1).

    Returns:
        [N] loss per entry.
    """
    left = target.long()
    right = left + 1
    w_left = right.to(target.dtype) - target
    w_right = 1.0 - w_left
    right = right.clamp(max=logits.shape[-1] - 1)
    return (
        F.cross_entropy(logits, left, reduction="none") * w_left
        + F.cross_entropy(logits, right, reduction="none") * w_right
    )
