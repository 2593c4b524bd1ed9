"""FCN head: a few 3x3 convs on one feature map; the usual auxiliary head of a segmentor (on C4)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from detkit.models.heads.seg_common import ConvNormAct, SegLossKeys, Unpack, head_outputs, resize
from detkit.registry import HEADS


@HEADS.register
class FCNHead(nn.Module):
    """``num_convs`` conv3x3-norm-ReLU (+ the input, concatenated, when ``concat_input``) and a classifier.

    Args:
        in_channels: channels of every input map (list) or of the chosen one (int).
        num_classes: C.
        in_index: which input map (default -2: C4 of a 4-level backbone, as MMSeg's auxiliary head).
        channels, num_convs, dilation, norm, dropout, concat_input: the decoder.
        align_corners: of the resizes.
        **loss: the loss keys (``ignore_index``, ``class_weight``, ``loss_weight``, ``dice_weight``,
            ``loss_prefix``) as :class:`~detkit.models.heads.seg_fpn.SemanticFPNHead`, but an auxiliary head's
            defaults: keys ``sem/aux_ce`` (prefix ``sem/aux_``), ``loss_weight`` 0.4 as in MMSeg.
        in_strides: accepted for a uniform head interface (unused).

    ``forward(feats) -> Tensor[B,C,h,w]``; ``loss(logits, target[B,H,W])``; ``predict(logits, size)``.
    """

    def __init__(
        self,
        in_channels: int | Sequence[int],
        num_classes: int,
        in_index: int = -2,
        channels: int = 128,
        num_convs: int = 1,
        dilation: int = 1,
        norm: str | None = "BN",
        dropout: float = 0.1,
        concat_input: bool = False,
        align_corners: bool = False,
        in_strides: Sequence[int] | None = None,
        **loss: Unpack[SegLossKeys],
    ):
        super().__init__()
        cin = in_channels if isinstance(in_channels, int) else list(in_channels)[in_index]
        self.in_index = int(in_index)
        self.convs = nn.Sequential(
            *[ConvNormAct(cin if k == 0 else channels, channels, 3, dilation, norm) for k in range(num_convs)]
        )
        width = channels if num_convs > 0 else cin
        self.fuse = ConvNormAct(width + cin, channels, 3, norm=norm) if concat_input and num_convs > 0 else None
        self.num_classes = int(num_classes)
        self.align_corners = align_corners
        self.classifier, self.criterion = head_outputs(  # an auxiliary head's loss defaults (MMSeg's)
            "FCNHead", width, self.num_classes, dropout, align_corners, loss, loss_weight=0.4, loss_prefix="sem/aux_"
        )

    def forward(self, feats: list[Tensor]) -> Tensor:
        """Class logits [B,C,h,w] at the chosen map's resolution."""
        x = feats[self.in_index]
        y = self.convs(x)
        if self.fuse is not None:
            y = self.fuse(torch.cat([x, y], dim=1))
        return self.classifier(y)

    def loss(self, logits: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Cross-entropy (+ Dice) of ``logits`` upsampled to ``target`` [B,H,W]."""
        return self.criterion(logits, target)

    def predict(self, logits: Tensor, size: Sequence[int]) -> Tensor:
        """Logits resized to ``size``: [B,C,H,W]."""
        return resize(logits, size, self.align_corners)
