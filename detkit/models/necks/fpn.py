"""Feature Pyramid Network with torchvision's ``FeaturePyramidNetwork`` numerics."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detkit.models.fuse import conv2d_act
from detkit.models.norms import build_norm
from detkit.registry import NECKS


def _conv(cin: int, cout: int, k: int, norm: str | None) -> nn.Module:
    if norm is None:
        return nn.Conv2d(cin, cout, k, padding=k // 2)
    conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)
    return nn.Sequential(conv, build_norm(norm, cout, owner="FPN norm"))


def _conv_add(conv: nn.Module, x: Tensor, add: Tensor | None = None, fused: bool = False) -> Tensor:
    """``conv(x) + add``; one oneDNN op for a plain conv when ``fused`` (``detkit.models.fuse.conv2d_act``)."""
    if fused and isinstance(conv, nn.Conv2d):
        return conv2d_act(x, conv, add=add)
    y = conv(x)
    return y + add if add is not None else y


@NECKS.register
class FPN(nn.Module):
    """Top-down FPN: 1x1 laterals, nearest upsampling to each lateral's size, 3x3 output convs.

    Args:
        in_channels: channels of the input maps (increasing stride).
        out_channels: channels of every output map.
        extra: extra coarser levels: ``'maxpool'`` (max_pool2d kernel 1 stride 2 on the last output,
            torchvision's ``LastLevelMaxPool``, used by R-CNN), ``'conv'`` (3x3 stride-2 convs, ReLU
            between them, as RetinaNet's ``LastLevelP6P7``) or None.
        num_extra: number of extra levels.
        extra_from: input of the first extra conv: ``'p5'`` (last FPN output) or ``'c5'`` (last input map).
        norm: None, ``'BN'``, ``'SyncBN'`` or ``'GN'`` after the lateral/output convs (then without bias).
        in_strides: strides of the inputs; default: the last is 32 and each earlier one half the next.

    Attributes:
        out_channels (int), strides (list[int]).

    State dict (norm=None): ``lateral_convs.{i}.{weight,bias}`` (torchvision ``inner_blocks.{i}.0.*``),
    ``output_convs.{i}.{weight,bias}`` (torchvision ``layer_blocks.{i}.0.*``), and for ``extra='conv'``
    ``extra_convs.{j}.{weight,bias}`` (torchvision ``extra_blocks.p6.*`` / ``extra_blocks.p7.*``).
    With a norm, each conv is ``{name}.{i}.0.weight`` and its norm ``{name}.{i}.1.*``.

    ``forward(feats: list[Tensor[B,C_i,H_i,W_i]]) -> list[Tensor[B,out_channels,H,W]]``.

    ``fused_inference`` (attribute, default False; detectors turn it on): without autograd, each plain
    lateral conv and its top-down addition run as one oneDNN op on the CPU (same values up to rounding).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int = 256,
        extra: str | None = "maxpool",
        num_extra: int = 1,
        extra_from: str = "p5",
        norm: str | None = None,
        in_strides: Sequence[int] | None = None,
    ):
        super().__init__()
        in_channels = list(in_channels)
        if not in_channels or any(c <= 0 for c in in_channels):
            raise ValueError(f"FPN in_channels must be positive channel counts, got {in_channels}")
        if extra not in (None, "maxpool", "conv"):
            raise ValueError(f"FPN extra must be None, 'maxpool' or 'conv', got {extra!r}")
        if extra_from not in ("p5", "c5"):
            raise ValueError(f"FPN extra_from must be 'p5' or 'c5', got {extra_from!r}")
        if in_strides is None:
            in_strides = [32 // 2 ** (len(in_channels) - 1 - i) for i in range(len(in_channels))]
        if len(in_strides) != len(in_channels):
            raise ValueError(f"FPN: {len(in_strides)} in_strides for {len(in_channels)} in_channels")
        self.lateral_convs = nn.ModuleList(_conv(c, out_channels, 1, norm) for c in in_channels)
        self.output_convs = nn.ModuleList(_conv(out_channels, out_channels, 3, norm) for _ in in_channels)
        self.extra = extra if num_extra > 0 else None
        self.num_extra = num_extra if self.extra else 0
        self.extra_from = extra_from
        if self.extra == "conv":
            first_in = out_channels if extra_from == "p5" else in_channels[-1]
            self.extra_convs = nn.ModuleList(
                nn.Conv2d(first_in if j == 0 else out_channels, out_channels, 3, stride=2, padding=1)
                for j in range(num_extra)
            )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
        self.out_channels = out_channels
        self.fused_inference = False
        self.strides = [int(s) for s in in_strides] + [
            int(in_strides[-1]) * 2 ** (j + 1) for j in range(self.num_extra)
        ]

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        """Return ``len(feats) + num_extra`` maps, increasing stride."""
        if len(feats) != len(self.lateral_convs):
            raise ValueError(f"FPN built for {len(self.lateral_convs)} input maps, got {len(feats)}")
        fused = self.fused_inference and not torch.is_grad_enabled()
        last = _conv_add(self.lateral_convs[-1], feats[-1], fused=fused)
        outs = [_conv_add(self.output_convs[-1], last, fused=fused)]
        for i in range(len(feats) - 2, -1, -1):
            top_down = F.interpolate(last, size=feats[i].shape[-2:], mode="nearest")
            last = _conv_add(self.lateral_convs[i], feats[i], top_down, fused)  # lateral + top-down
            outs.insert(0, _conv_add(self.output_convs[i], last, fused=fused))
        if self.extra == "maxpool":
            for _ in range(self.num_extra):
                outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2, padding=0))
        elif self.extra == "conv":
            x = outs[-1] if self.extra_from == "p5" else feats[-1]
            for j, conv in enumerate(self.extra_convs):
                x = conv(x if j == 0 else F.relu(x))
                outs.append(x)
        return outs
