"""Parameters per part and FLOPs of a detector's raw forward (``torch.utils.flop_counter.FlopCounterMode``)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["PARTS", "PartStats", "format_stats", "model_stats"]

# the fixed part names of DESIGN.md, in forward order
PARTS = ("backbone", "neck", "rpn_head", "box_head", "mask_head", "head", "decode_head")


class PartStats(NamedTuple):
    """One row: parameters (all / trainable) and FLOPs (None: not run, e.g. RoI heads without ``num_rois``)."""

    name: str
    params: int
    trainable: int
    flops: int | None


def _count(module: nn.Module) -> tuple[int, int]:
    ps = list(module.parameters())
    return sum(p.numel() for p in ps), sum(p.numel() for p in ps if p.requires_grad)


def _flops(fn, *args) -> tuple[int, Any]:
    counter = FlopCounterMode(display=False)
    with counter:
        out = fn(*args)
    return int(counter.get_total_flops()), out


def _random_boxes(n: int, h: int, w: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=gen) * torch.tensor([w * 0.8, h * 0.8])
    wh = 16 + torch.rand(n, 2, generator=gen) * torch.tensor([w * 0.2, h * 0.2])
    return torch.cat([xy, xy + wh], 1).to(device)


@torch.no_grad()
def model_stats(
    model: nn.Module, size: tuple[int, int] = (640, 640), num_rois: int = 0, size_divisor: int = 32
) -> tuple[list[PartStats], int, tuple[int, int]]:
    """Parameters per named part and FLOPs of one ``[1, 3, H, W]`` image through the raw forward.

    FLOPs are counted for backbone -> neck -> the dense head (``rpn_head`` / ``head`` / ``decode_head``)
    at the input size rounded up to ``size_divisor`` (the model pads so). The RoI heads
    (``box_head``, ``mask_head``) run on ``num_rois`` random boxes when ``num_rois > 0``; otherwise their
    FLOPs are None. FLOPs count a multiply-add as 2 (half of it is the "MACs" some papers call FLOPs).

    Returns:
        (rows, total parameters ``sum(p.numel() for p in model.parameters())``, (H, W) used).
    """
    was_training = model.training
    model.eval()
    h, w = (int(math.ceil(s / size_divisor) * size_divisor) for s in size)
    device = next(model.parameters()).device
    x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0)).to(device)
    rows, feats = [], None
    try:
        for name in PARTS:
            part = getattr(model, name, None)
            if not isinstance(part, nn.Module):
                continue
            flops = None
            if name == "backbone":
                flops, feats = _flops(part, x)
            elif name == "neck":
                flops, feats = _flops(part, feats)
            elif name in ("rpn_head", "head", "decode_head"):
                flops, _ = _flops(part, feats)
            elif num_rois > 0:  # box_head / mask_head: (feats, boxes per image, image sizes)
                boxes = [_random_boxes(num_rois, h, w, torch.Generator().manual_seed(1), device)]
                flops, _ = _flops(part, feats, boxes, [(h, w)])
            rows.append(PartStats(name, *_count(part), flops))
    finally:
        model.train(was_training)
    total = sum(p.numel() for p in model.parameters())
    rest = total - sum(r.params for r in rows)
    if rest:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad) - sum(r.trainable for r in rows)
        rows.append(PartStats("other", rest, trainable, None))
    return rows, total, (h, w)


def _human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def format_stats(
    rows: list[PartStats], total: int, hw: tuple[int, int], num_rois: int = 0, roi_heads: bool = True
) -> str:
    """A plain-text table: part, parameters (exact and human), trainable, GFLOPs and share of the total."""
    flops_total = sum(r.flops or 0 for r in rows)
    lines = [f"{'part':<12} {'params':>12} {'':>8} {'trainable':>12} {'GFLOPs':>9} {'share':>6}"]
    for r in rows:
        f = "-" if r.flops is None else f"{r.flops / 1e9:.3f}"
        share = "-" if not r.flops or not flops_total else f"{100 * r.flops / flops_total:.1f}%"
        lines.append(f"{r.name:<12} {r.params:>12d} {_human(r.params):>8} {r.trainable:>12d} {f:>9} {share:>6}")
    trainable = sum(r.trainable for r in rows)
    lines.append(f"{'total':<12} {total:>12d} {_human(total):>8} {trainable:>12d} {flops_total / 1e9:>9.3f}")
    rois = f", RoI heads on {num_rois} boxes" if num_rois else ", RoI heads not counted (--rois N to count them)"
    rois = rois if roi_heads else ""
    lines.append(f"FLOPs for one 3x{hw[0]}x{hw[1]} input (a multiply-add counts 2; GMACs = GFLOPs / 2){rois}")
    return "\n".join(lines)
