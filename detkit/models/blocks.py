"""Convolution blocks of the YOLO family (Conv-BN-SiLU, Bottleneck, C2f, SPPF), shared by backbone and neck."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detkit.models.fuse import conv_params, foldable, is_channels_last


def make_divisible(x: float, divisor: int = 8) -> int:
    """Round ``x`` up to a multiple of ``divisor`` (channel counts of scaled models)."""
    return int(math.ceil(x / divisor) * divisor)


class ConvBNAct(nn.Module):
    """Conv2d (no bias) + BatchNorm + SiLU; ``k`` odd, 'same' padding.

    BatchNorm uses eps 1e-3 and momentum 0.03 as the YOLO recipes do. ``forward(x [B,c1,H,W]) -> [B,c2,H/s,W/s]``.
    With ``fused_inference`` (``detkit.models.fuse.set_fused_inference``) and autograd off, an eval-mode
    BN is folded into the conv (cached folded weights, channels_last when the input is); parameters and
    state dict stay as they are. (oneDNN's fused conv + SiLU op measured slower than conv then SiLU here.)
    """

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU(inplace=True) if act else nn.Identity()
        self.fused_inference = False

    def forward(self, x: Tensor) -> Tensor:
        if (
            self.fused_inference
            and foldable(self.bn)
            and not (torch.is_grad_enabled() and self.conv.weight.requires_grad)
        ):
            w, b = conv_params(self.conv, self.bn, channels_last=is_channels_last(x))
            return self.act(
                F.conv2d(x, w, b, self.conv.stride, self.conv.padding, self.conv.dilation, self.conv.groups)
            )
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    """Two 3x3 ConvBNAct with an optional residual (when ``shortcut`` and c1 == c2)."""

    def __init__(self, c1: int, c2: int, shortcut: bool = True, expansion: float = 1.0):
        super().__init__()
        hidden = int(c2 * expansion)
        self.cv1 = ConvBNAct(c1, hidden, 3)
        self.cv2 = ConvBNAct(hidden, c2, 3)
        self.add = shortcut and c1 == c2

    def forward(self, x: Tensor) -> Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """CSP block with ``n`` bottlenecks whose every output is concatenated (YOLOv8's C2f).

    ``forward(x [B,c1,H,W]) -> [B,c2,H,W]``: a 1x1 conv to 2c channels split in two halves; each bottleneck
    takes the last chunk; all chunks are concatenated ((2+n)c channels) and fused by a 1x1 conv.
    """

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False, expansion: float = 0.5):
        super().__init__()
        self.c = int(c2 * expansion)
        self.cv1 = ConvBNAct(c1, 2 * self.c, 1)
        self.cv2 = ConvBNAct((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, self.c, shortcut) for _ in range(n))

    def forward(self, x: Tensor) -> Tensor:
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained k x k max-pools concatenated with their input."""

    def __init__(self, c1: int, c2: int, k: int = 5):
        super().__init__()
        hidden = c1 // 2
        self.cv1 = ConvBNAct(c1, hidden, 1)
        self.cv2 = ConvBNAct(hidden * 4, c2, 1)
        self.pool = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x: Tensor) -> Tensor:
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.pool(y[-1]))
        return self.cv2(torch.cat(y, 1))
