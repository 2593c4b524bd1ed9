"""CSPDarknet backbone with C2f blocks and SPPF (the YOLOv8 backbone), scaled by width and depth."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from detkit.models.backbones.init_weights import InitReport, init_backbone
from detkit.models.blocks import SPPF, C2f, ConvBNAct, make_divisible
from detkit.registry import BACKBONES

# scale: (depth multiplier, width multiplier, max channels) as in YOLOv8
SCALES = {
    "n": (0.33, 0.25, 1024),
    "s": (0.33, 0.50, 1024),
    "m": (0.67, 0.75, 768),
    "l": (1.00, 1.00, 512),
    "x": (1.00, 1.25, 512),
}
# per stage: output channels and C2f blocks, before scaling (stem conv, then stages P2..P5)
_STAGES = ((128, 3), (256, 6), (512, 6), (1024, 3))


@BACKBONES.register
class CSPDarknet(nn.Module):
    """CSPDarknet: a stride-2 stem conv, four stages (stride-2 conv + C2f), SPPF after the last.

    Args:
        scale: 'n' | 's' | 'm' | 'l' | 'x' (sets the three multipliers below), or None to give them.
        depth_multiple, width_multiple, max_channels: C2f repeats ``max(round(n * depth), 1)``; channels
            ``make_divisible(min(c, max_channels) * width, 8)``.
        out_indices: stages returned (1..4 = strides 4, 8, 16, 32); default (2, 3, 4) = P3, P4, P5.
        init_checkpoint: local path of a detkit checkpoint of any model with a CSPDarknet backbone of this size
            (e.g. a classifier's ``best.pth``: its ``backbone.*`` tensors, the head dropped) or of a CSPDarknet
            state dict; what was loaded, dropped, missing and unexpected is logged and kept as ``init_report``.

    Attributes:
        out_channels (list[int]), strides (list[int]).

    ``forward(x [B,3,H,W]) -> list`` of [B,C_i,H/s_i,W/s_i], increasing stride.
    """

    def __init__(
        self,
        scale: str | None = "n",
        depth_multiple: float | None = None,
        width_multiple: float | None = None,
        max_channels: int | None = None,
        out_indices: Sequence[int] = (2, 3, 4),
        init_checkpoint: str | None = None,
    ):
        super().__init__()
        if scale is not None:
            if scale not in SCALES:
                raise ValueError(f"CSPDarknet scale must be one of {sorted(SCALES)}, got {scale!r}")
            d, w, mc = SCALES[scale]
            depth_multiple = d if depth_multiple is None else depth_multiple
            width_multiple = w if width_multiple is None else width_multiple
            max_channels = mc if max_channels is None else max_channels
        if depth_multiple is None or width_multiple is None:
            raise ValueError("CSPDarknet needs a scale or both depth_multiple and width_multiple")
        max_channels = max_channels or 1024
        self.out_indices = tuple(int(i) for i in out_indices)
        if not self.out_indices or min(self.out_indices) < 1 or max(self.out_indices) > 4:
            raise ValueError(f"CSPDarknet out_indices must be within 1..4, got {out_indices}")

        def ch(c: int) -> int:
            return make_divisible(min(c, max_channels) * width_multiple, 8)

        c_in = ch(64)
        self.stem = ConvBNAct(3, c_in, 3, 2)
        self.stages = nn.ModuleList()
        channels = []
        for i, (c, n) in enumerate(_STAGES):
            c_out = ch(c)
            layers = [ConvBNAct(c_in, c_out, 3, 2), C2f(c_out, c_out, max(round(n * depth_multiple), 1), True)]
            if i == len(_STAGES) - 1:
                layers.append(SPPF(c_out, c_out, 5))
            self.stages.append(nn.Sequential(*layers))
            channels.append(c_out)
            c_in = c_out
        self.out_channels = [channels[i - 1] for i in self.out_indices]
        self.strides = [2 ** (i + 1) for i in self.out_indices]
        self.init_report: InitReport | None = None
        if init_checkpoint:
            self.init_report = init_backbone(self, init_checkpoint)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages, start=1):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        return outs
