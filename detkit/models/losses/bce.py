"""Binary cross-entropy with logits against one-hot soft targets, without a dense target tensor."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from detkit.utils.amp import autocast_off

# elements per block of the CPU loops (1 MiB of float32): each block's softplus / sigmoid stays in cache
BLOCK = 1 << 18


def _row_blocks(logits: Tensor) -> list[slice]:
    """Row slices of a [N,C] tensor: blocks of about :data:`BLOCK` elements on a CPU, all rows at once elsewhere."""
    n, c = logits.shape
    rows = max(1, BLOCK // max(c, 1)) if logits.device.type == "cpu" else max(n, 1)
    return [slice(start, start + rows) for start in range(0, n, rows)]


class _OneHotBCE(torch.autograd.Function):
    """Sum of BCE-with-logits terms over a [N,C] matrix whose targets are ``values`` at the flat positions
    ``index`` and 0 elsewhere; ``weight`` [C] or None."""

    @staticmethod
    def forward(ctx, logits: Tensor, index: Tensor, values: Tensor, weight: Tensor | None) -> Tensor:
        with autocast_off(logits.device.type):
            total = logits.new_zeros(())
            for rows in _row_blocks(logits):  # sum of softplus(x) (* w_c), block by block: no [N,C] temporary
                term = F.softplus(logits[rows])
                total += term.sum() if weight is None else (term @ weight).sum()
            # minus x * t at the targets' positions (t = 0 elsewhere): BCE = softplus(x) - x * t
            scaled = values if weight is None else values * weight[index % logits.shape[1]]
            total -= (logits.view(-1)[index] * scaled).sum()
        ctx.save_for_backward(logits, index, scaled, weight)
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        logits, index, scaled, weight = ctx.saved_tensors
        with autocast_off(logits.device.type):
            out = torch.empty_like(logits)
            for rows in _row_blocks(logits):  # (sigmoid(x) (* w_c)) * grad, block by block
                block = torch.sigmoid(logits[rows], out=out[rows])
                if weight is not None:
                    block.mul_(weight)
                block.mul_(grad)
            out.view(-1).index_put_((index,), -scaled * grad, accumulate=True)  # minus t (* w_c), times grad
        return out, None, None, None


def bce_with_logits_one_hot(logits: Tensor, labels: Tensor, targets: Tensor, weight: Tensor | None = None) -> Tensor:
    """``F.binary_cross_entropy_with_logits(logits, T, weight, reduction='sum')`` where T [...,C] is 0 except
    ``T[..., labels] = targets`` (soft one-hot targets: one class per row), without making T.

    A dense [B,A,C] target (YOLO's task-aligned scores) costs a zero fill, a scatter and, in the loss, four more
    tensors of its size; here the forward is a blockwise sum of softplus(x) (``softplus(x) - x t`` is BCE) minus
    the x * t of the one target per row, and the backward writes sigmoid(x) (- t) into the gradient alone. Equal
    to the dense loss up to float rounding (the order of the sum; tests/models/losses/test_bce.py).

    Args:
        logits: [...,C] float logits.
        labels: int64 [...] the class of each row's target (any class where ``targets`` is 0).
        targets: [...] float target of that class (0 for rows without one).
        weight: optional [C] per-class weights of the terms.

    Returns:
        the summed loss, a scalar in the logits' dtype.
    """
    c = logits.shape[-1]
    flat = logits.reshape(-1, c).contiguous()  # a view of contiguous logits (flat positions index into it)
    rows = torch.arange(flat.shape[0], device=logits.device)
    index = rows * c + labels.reshape(-1).to(rows.device)
    values = targets.reshape(-1).to(logits.dtype)
    w = None if weight is None else weight.to(logits.dtype)
    return _OneHotBCE.apply(flat, index, values, w)
