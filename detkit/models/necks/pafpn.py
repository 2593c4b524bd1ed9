"""PAFPN neck: top-down then bottom-up fusion with C2f blocks (the YOLOv8 neck)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detkit.models.blocks import C2f, ConvBNAct
from detkit.ops.layout import cat_channels
from detkit.registry import NECKS


@NECKS.register
class PAFPN(nn.Module):
    """Path-aggregation FPN over L levels: upsample + concat + C2f going up, stride-2 conv + concat + C2f going down.

    Args:
        in_channels: channels of the L input maps (increasing stride, each stride twice the previous).
        out_channels: channels of the L outputs (default: ``in_channels``).
        num_blocks: bottlenecks per C2f (YOLOv8: 3 x depth multiple, at least 1).
        strides: strides of the inputs (carried as ``self.strides``; default 8, 16, 32, ...).

    ``forward(feats: list[[B,in_i,H_i,W_i]]) -> list[[B,out_i,H_i,W_i]]``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: Sequence[int] | None = None,
        num_blocks: int = 1,
        strides: Sequence[int] | None = None,
    ):
        super().__init__()
        cin = [int(c) for c in in_channels]
        cout = [int(c) for c in (out_channels or cin)]
        if len(cin) < 2 or len(cout) != len(cin):
            raise ValueError(f"PAFPN needs >= 2 levels and as many out_channels as in_channels, got {cin}, {cout}")
        n = len(cin)
        self.out_channels = cout
        self.strides = list(strides) if strides is not None else [8 * 2**i for i in range(n)]
        # top-down: level i (from n-2 to 0) fuses upsampled level i+1 with input i
        self.top_down = nn.ModuleList()
        up_ch = [0] * n
        up_ch[n - 1] = cin[n - 1]
        for i in range(n - 2, -1, -1):
            c_out = cout[i] if i == 0 else cin[i]
            self.top_down.append(C2f(up_ch[i + 1] + cin[i], c_out, num_blocks))
            up_ch[i] = c_out
        # bottom-up: level i (1..n-1) fuses a stride-2 conv of output i-1 with the top-down map i
        self.downsample = nn.ModuleList()
        self.bottom_up = nn.ModuleList()
        for i in range(1, n):
            self.downsample.append(ConvBNAct(cout[i - 1], cout[i - 1], 3, 2))
            self.bottom_up.append(C2f(cout[i - 1] + up_ch[i], cout[i], num_blocks))

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        n = len(feats)
        td = [None] * n
        td[n - 1] = feats[n - 1]
        for k, i in enumerate(range(n - 2, -1, -1)):
            up = F.interpolate(td[i + 1], scale_factor=2.0, mode="nearest")
            td[i] = self.top_down[k](cat_channels([up, feats[i]], dense=[0]))  # up's gradient: to the upsampling
        outs = [td[0]]
        for i in range(1, n):
            down = self.downsample[i - 1](outs[-1])
            outs.append(self.bottom_up[i - 1](torch.cat([down, td[i]], 1)))
        return outs
