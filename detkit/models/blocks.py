"""Convolution blocks of the YOLO family (Conv-BN-SiLU, Bottleneck, C2f, SPPF), shared by backbone and neck."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detkit.models.fuse import conv_params, conv_silu_packed, foldable
from detkit.ops.layout import cat_channels, is_channels_last


def make_divisible(x: float, divisor: int = 8) -> int:
    """Round ``x`` up to a multiple of ``divisor`` (channel counts of scaled models)."""
    return int(math.ceil(x / divisor) * divisor)


class ConvBNAct(nn.Module):
    """Conv2d (no bias) + BatchNorm + SiLU; ``k`` odd, 'same' padding.

    BatchNorm uses eps 1e-3 and momentum 0.03 as the YOLO recipes do. ``forward(x [B,c1,H,W]) -> [B,c2,H/s,W/s]``.
    With ``fused_inference`` (``detkit.models.fuse.set_fused_inference``) and autograd off, an eval-mode
    BN is folded into the conv (cached folded weights, channels_last when the input is); parameters and
    state dict stay as they are. On the CPU with channels_last inputs, conv, folded BN and SiLU run as one oneDNN
    op with weights prepacked per input shape (:func:`~detkit.models.fuse.conv_silu_packed`; unpacked, the
    fused op had measured no faster than conv then SiLU).
    SiLU runs in place without autograd and out of place with it (an in-place SiLU clones its input for the
    backward).
    """

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU(inplace=True) if act else nn.Identity()
        self.fused_inference = False

    def forward(self, x: Tensor) -> Tensor:
        if self.fused_inference and isinstance(self.act, (nn.SiLU, nn.Identity)):
            y = conv_silu_packed(x, self.conv, self.bn, silu=isinstance(self.act, nn.SiLU))
            if y is not None:  # channels_last CPU inference: conv, folded BN and SiLU as one prepacked oneDNN op
                return y
        y = self.conv_bn(x)
        if y.requires_grad and isinstance(self.act, nn.SiLU):
            return F.silu(y)  # in place, autograd would keep a copy of y for SiLU's backward: one pass more
        return self.act(y)

    def conv_bn(self, x: Tensor) -> Tensor:
        """The output before the activation: conv then BN (folded into the conv on the fused path)."""
        if (
            self.fused_inference
            and foldable(self.bn)
            and not (torch.is_grad_enabled() and self.conv.weight.requires_grad)
        ):
            y = conv_silu_packed(x, self.conv, self.bn, silu=False)  # channels_last CPU: prepacked weights
            if y is not None:
                return y
            w, b = conv_params(self.conv, self.bn, channels_last=is_channels_last(x))
            return F.conv2d(x, w, b, self.conv.stride, self.conv.padding, self.conv.dilation, self.conv.groups)
        return self.bn(self.conv(x))

    def act_into(self, y: Tensor, out: Tensor) -> Tensor:
        """The activation of ``y`` (``conv_bn``'s output) written into ``out`` (no autograd); returns ``out``."""
        if isinstance(self.act, nn.SiLU):
            return torch.ops.aten.silu.out(y, out=out)
        return out.copy_(self.act(y))


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

    def forward_into(self, x: Tensor, out: Tensor) -> Tensor:
        """``forward`` written into ``out`` (no autograd); returns ``out``."""
        if not self.add:
            return self.cv2.act_into(self.cv2.conv_bn(self.cv1(x)), out)
        return torch.add(x, self.cv2(self.cv1(x)), out=out)


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
        if torch.is_grad_enabled() or torch.compiler.is_compiling() or torch.jit.is_tracing():
            return self.forward_chunk_cat(x)  # autograd, inductor (plans the copies itself), ONNX export
        return self.cv2(self.concat_in_place(x))

    def forward_chunk_cat(self, x: Tensor) -> Tensor:
        """``forward`` as YOLOv8 writes it: cv1's output chunked, the bottleneck outputs concatenated
        (:func:`~detkit.ops.layout.cat_channels`: a dense gradient for the last bottleneck's output)."""
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(cat_channels(y, dense=[-1]))  # the last bottleneck's gradient goes to its SiLU alone

    def concat_in_place(self, x: Tensor) -> Tensor:
        """cv2's input [B,(2+n)c,H,W] with every part written once into it: no chunk or cat copies (no autograd).

        cv1's activation goes into channels 0..2c, each bottleneck's output into the next c channels; the
        tensor keeps the layout of cv1's output (channels_last on the CPU fast path).
        """
        first = self.cv1.conv_bn(x)  # [B,2c,H,W] before the activation
        b, _, h, w = first.shape
        layout = torch.channels_last if is_channels_last(first) else torch.contiguous_format
        out = torch.empty(
            (b, (2 + len(self.m)) * self.c, h, w), dtype=first.dtype, device=first.device, memory_format=layout
        )
        self.cv1.act_into(first, out[:, : 2 * self.c])
        for i, m in enumerate(self.m):
            m.forward_into(out[:, (1 + i) * self.c : (2 + i) * self.c], out[:, (2 + i) * self.c : (3 + i) * self.c])
        return out


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
