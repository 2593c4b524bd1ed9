"""Memory-layout helpers: the channels_last test, the graph-capture test of eager-only CPU kernels, and a channel
concatenation whose backward hands out dense gradients (CPU training steps)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def is_channels_last(x: Tensor) -> bool:
    """Whether ``x`` is a 4-d tensor in channels_last (and not also plain contiguous, as 1x1 maps are)."""
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def capturing_graph() -> bool:
    """Whether tracing, scripting, ONNX export or ``torch.compile`` is capturing a graph: eager-only CPU kernels
    (oneDNN's prepacked convs, the row-sum and channel-parallel RoIAligns) step aside for the standard ops."""
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export():
        return True
    return torch.compiler.is_compiling()


def channels_innermost(x: Tensor) -> bool:
    """A channels_last map or a channel slice of one (C2f's chunks): channels adjacent in memory."""
    return x.dim() == 4 and x.shape[1] > 1 and x.stride(1) == 1 and not x.is_contiguous()


class _ChannelCat(torch.autograd.Function):
    """``torch.cat(parts, 1)`` whose backward gives the parts numbered in ``dense`` channels_last-contiguous
    gradients."""

    @staticmethod
    def forward(ctx, dense: frozenset[int], *parts: Tensor) -> Tensor:
        ctx.sizes, ctx.dense = [p.shape[1] for p in parts], dense
        return torch.cat(parts, 1)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        pieces = grad.split(ctx.sizes, 1)
        copy = is_channels_last(grad)
        return (None,) + tuple(
            (p.contiguous(memory_format=torch.channels_last) if copy and i in ctx.dense else p) if needed else None
            for i, (p, needed) in enumerate(zip(pieces, ctx.needs_input_grad[1:]))
        )


def cat_channels(parts: Sequence[Tensor], dense: Sequence[int]) -> Tensor:
    """Concatenate [B,C_i,H,W] maps along the channels: [B,sum C_i,H,W], the values of ``torch.cat(parts, 1)``.

    In a channels_last training step, the gradient torch.cat's backward hands each part is a channel slice of
    the output's gradient: every pixel's C_i channels, then a jump of sum C_i. Elementwise backward kernels
    (SiLU, nearest upsampling) run on such slices several times slower than on dense tensors (SiLU's backward
    of a 16-of-48-channel slice at 8x160x160: 11.5 vs 1.1 ms), so the gradients of the parts numbered in
    ``dense`` (negative numbers count from the end) are copied into dense channels_last tensors first. Name
    the parts whose gradient goes to such a kernel: a convolution's backward copies a strided gradient itself,
    and copying every part measured no faster than ``torch.cat`` (YOLO training step A/B 1.00, against 0.99
    for the parts named). NCHW maps, no autograd, ``torch.compile`` (inductor plans its own copies) and export
    tracing use ``torch.cat`` itself.
    """
    if (
        torch.is_grad_enabled()
        and any(channels_innermost(p) for p in parts)
        and any(p.requires_grad for p in parts)
        and not torch.compiler.is_compiling()
        and not torch.jit.is_tracing()
    ):
        return _ChannelCat.apply(frozenset(i % len(parts) for i in dense), *parts)
    return torch.cat(list(parts), 1)
