"""UPerNet decoder (Xiao et al. 2018): pyramid pooling on the deepest map + FPN fusion of every level."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from detkit.models.heads.seg_common import ConvNormAct, SegLossKeys, Unpack, head_outputs, input_channels, resize
from detkit.registry import HEADS


class PPM(nn.Module):
    """Pyramid pooling module: adaptive average pools of ``pool_scales`` -> 1x1 conv -> upsample; with the input.

    The pooled branches use a 1x1 conv with bias and ReLU but no norm (a 1x1 pool cannot be batch-normalised
    on a batch of one image). ``forward(x [B,cin,h,w]) -> [B, cin + len(scales)*channels, h, w]``.
    """

    def __init__(self, cin: int, channels: int, pool_scales: Sequence[int], align_corners: bool):
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(int(s)), nn.Conv2d(cin, channels, 1), nn.ReLU(inplace=True))
            for s in pool_scales
        )
        self.align_corners = align_corners

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x] + [resize(s(x), x.shape[-2:], self.align_corners) for s in self.stages], dim=1)


@HEADS.register
class UPerHead(nn.Module):
    """PPM(last map) as the top of an FPN over the other maps; every level upsampled to the finest, fused.

    Args:
        in_channels: channels of the input maps (list; an int repeats for every map).
        num_classes: C.
        in_strides: strides of the input maps (informative).
        in_index: which maps to use (default all; the last one feeds the PPM).
        channels: decoder width. pool_scales: PPM output sizes (1, 2, 3, 6).
        norm, dropout, align_corners: as :class:`~detkit.models.heads.seg_fpn.SemanticFPNHead`.
        **loss: the loss keys, :class:`~detkit.models.heads.seg_common.SegLossKeys`.

    ``forward(feats) -> Tensor[B,C,H_0,W_0]``; ``loss(logits, target[B,H,W])``; ``predict(logits, size)``.
    """

    def __init__(
        self,
        in_channels: int | Sequence[int],
        num_classes: int,
        in_strides: Sequence[int] | None = None,
        in_index: Sequence[int] | None = None,
        channels: int = 256,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
        norm: str | None = "BN",
        dropout: float = 0.1,
        align_corners: bool = False,
        **loss: Unpack[SegLossKeys],
    ):
        super().__init__()
        chans = input_channels(in_channels, in_strides)
        n_in = len(chans)
        self.in_index = list(in_index) if in_index is not None else list(range(n_in))
        used = [chans[i] for i in self.in_index]
        self.align_corners = align_corners
        self.ppm = PPM(used[-1], channels, pool_scales, align_corners)
        self.ppm_bottleneck = ConvNormAct(used[-1] + len(pool_scales) * channels, channels, 3, norm=norm)
        self.lateral_convs = nn.ModuleList(ConvNormAct(c, channels, 1, norm=norm) for c in used[:-1])
        self.fpn_convs = nn.ModuleList(ConvNormAct(channels, channels, 3, norm=norm) for _ in used[:-1])
        self.fpn_bottleneck = ConvNormAct(len(used) * channels, channels, 3, norm=norm)
        self.num_classes = int(num_classes)
        self.classifier, self.criterion = head_outputs(
            "UPerHead", channels, self.num_classes, dropout, align_corners, loss
        )

    def forward(self, feats: list[Tensor]) -> Tensor:
        """Class logits [B,C,H_0,W_0] at the finest used level's resolution."""
        xs = [feats[i] for i in self.in_index]
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, xs[:-1])]
        laterals.append(self.ppm_bottleneck(self.ppm(xs[-1])))
        for i in range(len(laterals) - 1, 0, -1):  # top-down
            laterals[i - 1] = laterals[i - 1] + resize(laterals[i], laterals[i - 1].shape[-2:], self.align_corners)
        outs = [conv(x) for conv, x in zip(self.fpn_convs, laterals[:-1])] + [laterals[-1]]
        size = outs[0].shape[-2:]
        fused = torch.cat([resize(o, size, self.align_corners) for o in outs], dim=1)  # [B,L*ch,H_0,W_0]
        return self.classifier(self.fpn_bottleneck(fused))

    def loss(self, logits: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Cross-entropy (+ Dice) of ``logits`` upsampled to ``target`` [B,H,W]."""
        return self.criterion(logits, target)

    def predict(self, logits: Tensor, size: Sequence[int]) -> Tensor:
        """Logits resized to ``size``: [B,C,H,W]."""
        return resize(logits, size, self.align_corners)
