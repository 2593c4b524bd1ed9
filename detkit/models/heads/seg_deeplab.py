"""DeepLabV3+ decoder (Chen et al. 2018): ASPP on the deepest map, fused with a low-level (stride-4) skip."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from detkit.models.heads.seg_common import ConvNormAct, SegLossKeys, Unpack, head_outputs, input_channels, resize
from detkit.registry import HEADS


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1 conv, one 3x3 conv per dilation, image pooling; concat; 1x1 project.

    The image-pooling branch is a 1x1 conv with bias and ReLU but no norm: its input is 1x1, where
    BatchNorm cannot train on a batch of one image.

    ``forward(x [B,cin,h,w]) -> [B,channels,h,w]``.
    """

    def __init__(self, cin: int, channels: int, dilations: Sequence[int], norm: str | None):
        super().__init__()
        self.branches = nn.ModuleList(
            [ConvNormAct(cin, channels, 1, norm=norm)]
            + [ConvNormAct(cin, channels, 3, int(d), norm) for d in dilations]
        )
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, channels, 1), nn.ReLU(inplace=True))
        self.project = ConvNormAct(channels * (len(dilations) + 2), channels, 1, norm=norm)

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.pool(x).expand(-1, -1, *x.shape[-2:])  # [B,ch,h,w]
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], dim=1))


@HEADS.register
class DeepLabV3PlusHead(nn.Module):
    """ASPP(C5) -> upsample to the low-level map -> concat with its 1x1 projection -> two 3x3 convs -> classifier.

    Args:
        in_channels: channels of the input maps (list; an int repeats for every map).
        num_classes: C.
        in_strides: strides of the input maps (informative; sizes are taken from the maps).
        in_index: the map the ASPP runs on (default -1, the deepest).
        low_level_index: the skip map (default 0, stride 4).
        channels: ASPP / decoder width. low_level_channels: width of the skip projection (48 in the paper).
        dilations: ASPP rates: (6, 12, 18) at output stride 16, (12, 24, 36) at 8.
        norm, dropout, align_corners: as :class:`~detkit.models.heads.seg_fpn.SemanticFPNHead`.
        **loss: the loss keys, :class:`~detkit.models.heads.seg_common.SegLossKeys`.

    ``forward(feats) -> Tensor[B,C,H_low,W_low]``; ``loss(logits, target[B,H,W])``; ``predict(logits, size)``.
    """

    def __init__(
        self,
        in_channels: int | Sequence[int],
        num_classes: int,
        in_strides: Sequence[int] | None = None,
        in_index: int = -1,
        low_level_index: int = 0,
        channels: int = 256,
        low_level_channels: int = 48,
        dilations: Sequence[int] = (6, 12, 18),
        norm: str | None = "BN",
        dropout: float = 0.1,
        align_corners: bool = False,
        **loss: Unpack[SegLossKeys],
    ):
        super().__init__()
        chans = input_channels(in_channels, in_strides)
        self.in_index, self.low_level_index = int(in_index), int(low_level_index)
        self.aspp = ASPP(chans[self.in_index], channels, dilations, norm)
        self.low_proj = ConvNormAct(chans[self.low_level_index], low_level_channels, 1, norm=norm)
        self.fuse = nn.Sequential(
            ConvNormAct(channels + low_level_channels, channels, 3, norm=norm),
            ConvNormAct(channels, channels, 3, norm=norm),
        )
        self.num_classes = int(num_classes)
        self.align_corners = align_corners
        self.classifier, self.criterion = head_outputs(
            "DeepLabV3PlusHead", channels, self.num_classes, dropout, align_corners, loss
        )

    def forward(self, feats: list[Tensor]) -> Tensor:
        """Class logits [B,C,H_low,W_low] at the low-level map's resolution."""
        low = feats[self.low_level_index]
        x = resize(self.aspp(feats[self.in_index]), low.shape[-2:], self.align_corners)  # [B,ch,H_low,W_low]
        return self.classifier(self.fuse(torch.cat([x, self.low_proj(low)], dim=1)))

    def loss(self, logits: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Cross-entropy (+ Dice) of ``logits`` upsampled to ``target`` [B,H,W]."""
        return self.criterion(logits, target)

    def predict(self, logits: Tensor, size: Sequence[int]) -> Tensor:
        """Logits resized to ``size``: [B,C,H,W]."""
        return resize(logits, size, self.align_corners)
