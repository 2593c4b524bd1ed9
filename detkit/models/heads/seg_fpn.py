"""Semantic FPN decoder (Kirillov et al., Panoptic FPN): every pyramid level upsampled to the finest, summed."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from detkit.models.heads.seg_common import ConvNormAct, SegLossKeys, Unpack, head_outputs, input_channels, resize
from detkit.registry import HEADS


@HEADS.register
class SemanticFPNHead(nn.Module):
    """Per level: conv3x3-norm-ReLU + 2x bilinear upsampling until the finest used stride; sum; 1x1 classifier.

    Args:
        in_channels: channels of the input maps (a list, or one int for an FPN's equal widths).
        num_classes: C.
        in_strides: strides of the input maps (default 4, 8, 16, ...); they set how many conv + upsample
            stages each level gets (``max(1, log2(stride / finest stride))``).
        in_index: which input maps to use (default: all given in ``in_strides``/``in_channels``).
        channels: width of the decoder.
        norm: ``BN``, ``SyncBN``, ``GN`` or None.
        dropout: before the classifier.
        align_corners: of every bilinear resize (and of the loss's upsampling).
        **loss: the loss keys ``ignore_index`` (255), ``class_weight``, ``loss_weight`` (1.0),
            ``dice_weight`` (0.0), ``loss_prefix`` (``'sem/'``: keys ``sem/ce``, ``sem/dice``); see
            :func:`~detkit.models.heads.seg_common.head_criterion`.

    ``forward(feats: list[Tensor[B,C_i,H_i,W_i]]) -> Tensor[B,C,H_0,W_0]`` (logits at the finest used
    level); ``loss(logits, target[B,H,W]) -> dict``; ``predict(logits, size) -> Tensor[B,C,*size]``.
    """

    def __init__(
        self,
        in_channels: int | Sequence[int],
        num_classes: int,
        in_strides: Sequence[int] | None = None,
        in_index: Sequence[int] | None = None,
        channels: int = 128,
        norm: str | None = "BN",
        dropout: float = 0.1,
        align_corners: bool = False,
        **loss: Unpack[SegLossKeys],
    ):
        super().__init__()
        chans = input_channels(in_channels, in_strides)  # an int width without strides: a 4-level pyramid
        n_in = len(chans)
        strides = list(in_strides) if in_strides is not None else [4 * 2**i for i in range(n_in)]
        self.in_index = list(in_index) if in_index is not None else list(range(n_in))
        base = strides[self.in_index[0]]
        self.scale_heads = nn.ModuleList()
        for i in self.in_index:
            n = max(1, int(round(math.log2(strides[i] / base))))
            self.scale_heads.append(
                nn.ModuleList(ConvNormAct(chans[i] if k == 0 else channels, channels, 3, norm=norm) for k in range(n))
            )
        self.num_classes = int(num_classes)
        self.align_corners = align_corners
        self.classifier, self.criterion = head_outputs(
            "SemanticFPNHead", channels, self.num_classes, dropout, align_corners, loss
        )

    def forward(self, feats: list[Tensor]) -> Tensor:
        """Class logits [B,C,H_0,W_0] at the first used level's resolution."""
        size = feats[self.in_index[0]].shape[-2:]
        out = None
        for i, stages in zip(self.in_index, self.scale_heads):
            x = feats[i]
            for k, conv in enumerate(stages):
                x = conv(x)
                if tuple(x.shape[-2:]) != tuple(size):  # 2x per stage, the last one to the exact size
                    last = k == len(stages) - 1
                    target = size if last else (x.shape[-2] * 2, x.shape[-1] * 2)
                    x = resize(x, target, self.align_corners)
            out = x if out is None else out + x  # [B,ch,H_0,W_0]
        return self.classifier(out)

    def loss(self, logits: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Cross-entropy (+ Dice) of ``logits`` upsampled to ``target`` [B,H,W] (255 = ignore)."""
        return self.criterion(logits, target)

    def predict(self, logits: Tensor, size: Sequence[int]) -> Tensor:
        """Logits bilinearly resized to ``size`` (the network input's H, W): [B,C,H,W]."""
        return resize(logits, size, self.align_corners)
