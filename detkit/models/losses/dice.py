"""Multi-class Dice loss for semantic segmentation (torchvision.ops has none)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def dice_loss(
    logits: Tensor,
    target: Tensor,
    ignore_index: int = 255,
    smooth: float = 1.0,
    class_weight: Sequence[float] | Tensor | None = None,
) -> Tensor:
    """Soft Dice loss ``1 - (2 sum(p t) + s) / (sum(p) + sum(t) + s)`` per class, averaged over classes.

    Sums run over every valid pixel of the batch; pixels whose target is ``ignore_index`` contribute
    neither to the probabilities nor to the one-hot targets, so their logits and labels do not matter.

    Args:
        logits: float [B, C, H, W] raw class scores (softmax is applied here).
        target: int [B, H, W] in 0..C-1 or ``ignore_index``.
        ignore_index: target value that is not scored.
        smooth: additive smoothing ``s`` (keeps a class absent from target and prediction at loss 0).
        class_weight: optional [C] weights of the per-class terms (normalised to sum to 1).

    Returns:
        scalar tensor.
    """
    if logits.dim() != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"dice_loss: logits [B,C,H,W] and target [B,H,W] expected, got "
            f"{tuple(logits.shape)} and {tuple(target.shape)}"
        )
    num_classes = logits.shape[1]
    valid = target != ignore_index  # [B,H,W]
    probs = logits.float().softmax(dim=1) * valid[:, None]  # [B,C,H,W]
    onehot = F.one_hot(torch.where(valid, target, 0).long(), num_classes)  # [B,H,W,C]
    onehot = onehot.permute(0, 3, 1, 2).to(probs.dtype) * valid[:, None]  # [B,C,H,W]
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)  # [C]
    denom = probs.sum(dims) + onehot.sum(dims)  # [C]
    per_class = 1.0 - (2.0 * inter + smooth) / (denom + smooth)  # [C]
    if class_weight is None:
        return per_class.mean()
    w = torch.as_tensor(class_weight, dtype=per_class.dtype, device=per_class.device)
    if w.shape != per_class.shape:
        raise ValueError(f"dice_loss: {w.numel()} class weights for {num_classes} classes")
    return (per_class * w).sum() / w.sum().clamp(min=1e-12)
