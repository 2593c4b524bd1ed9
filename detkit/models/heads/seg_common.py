"""Parts shared by the semantic segmentation decoders: conv blocks, the classifier and the loss."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TypedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detkit.models.losses.dice import dice_loss
from detkit.models.norms import build_norm

if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # Python 3.10
    from typing_extensions import Unpack

__all__ = [
    "IGNORE",
    "ConvNormAct",
    "SegClassifier",
    "SegCriterion",
    "SegLossKeys",
    "Unpack",
    "channel_list",
    "head_outputs",
    "input_channels",
    "keep_255",
    "resize",
]

IGNORE = 255  # the label value detkit's datasets and transforms mark ignored pixels with


def keep_255(key: str, value: int) -> str:
    """Why ``key`` (``model.ignore_index``, ``model.decode_head.ignore_index``) set to ``value`` is refused by a
    ``Segmentor``: the data it learns from marks ignored pixels with 255, whatever the key says."""
    return (
        f"{key}={value}: detkit's datasets mark ignored pixels (borders, padding, fills) with 255, so {key} must "
        "stay 255; map other values to 255 with the dataset's label_map (docs/segmentation.md)"
    )


class ConvNormAct(nn.Sequential):
    """``Conv2d`` (no bias when normalised) + norm + ReLU; 'same' padding for odd kernels and any dilation."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, dilation: int = 1, norm: str | None = "BN"):
        pad = dilation * (kernel_size // 2)
        super().__init__(
            nn.Conv2d(cin, cout, kernel_size, padding=pad, dilation=dilation, bias=norm is None),
            build_norm(norm, cout, owner="segmentation head norm"),
            nn.ReLU(inplace=True),
        )


def channel_list(in_channels: int | Sequence[int], n: int) -> list[int]:
    """``in_channels`` as a list of ``n`` ints (an int, e.g. an FPN's width, is repeated)."""
    if isinstance(in_channels, int):
        return [in_channels] * n
    chans = [int(c) for c in in_channels]
    if len(chans) != n:
        raise ValueError(f"{len(chans)} in_channels {chans} for {n} feature maps")
    return chans


def input_channels(in_channels: int | Sequence[int], in_strides: Sequence[int] | None) -> list[int]:
    """Channels of each input map: one per stride in ``in_strides`` (else per entry, or 4 for an int)."""
    n = len(in_strides) if in_strides is not None else (4 if isinstance(in_channels, int) else len(in_channels))
    return channel_list(in_channels, n)


def resize(x: Tensor, size: Sequence[int], align_corners: bool = False) -> Tensor:
    """Bilinear resize of ``x`` [B,C,h,w] to ``size`` (H, W); no-op when already that size. While tracing (ONNX
    export) ``size`` stays as traced, so that a dynamic graph resizes to each input's size (int() would fix it)."""
    if torch.jit.is_tracing():
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=align_corners)
    size = tuple(int(s) for s in size)
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)


class SegClassifier(nn.Module):
    """Dropout + 1x1 conv from decoder channels to class logits. ``[B,ch,h,w] -> [B,C,h,w]``."""

    def __init__(self, channels: int, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv = nn.Conv2d(channels, num_classes, 1)
        nn.init.normal_(self.conv.weight, std=0.01)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.dropout(x))


class SegCriterion(nn.Module):
    """Cross-entropy (``ignore_index``, optional class weights) + optional Dice on logits upsampled to the labels.

    Args:
        num_classes: C.
        ignore_index: label value that is never scored (255).
        class_weight: optional C per-class cross-entropy (and Dice) weights.
        ce_weight: weight of the cross-entropy term.
        dice_weight: weight of the Dice term (0: not computed).
        prefix: key prefix, e.g. ``'sem/'`` -> ``sem/ce``, ``sem/dice``; ``'sem/aux_'`` -> ``sem/aux_ce``.
        align_corners: of the bilinear upsampling.

    ``forward(logits [B,C,h,w], target int [B,H,W]) -> {prefix+'ce': scalar, prefix+'dice': scalar}``.
    The cross-entropy is the mean over valid pixels (weighted mean with class weights); a batch without a
    valid pixel gives 0 (with gradient) instead of nan.
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        class_weight: Sequence[float] | None = None,
        ce_weight: float = 1.0,
        dice_weight: float = 0.0,
        prefix: str = "sem/",
        align_corners: bool = False,
    ):
        super().__init__()
        self.num_classes, self.ignore_index = int(num_classes), int(ignore_index)
        if class_weight is not None and len(class_weight) != self.num_classes:
            raise ValueError(f"class_weight has {len(class_weight)} values for {self.num_classes} classes")
        weight = None if class_weight is None else torch.as_tensor(class_weight, dtype=torch.float32)
        self.register_buffer("class_weight", weight, persistent=False)
        self.ce_weight, self.dice_weight = float(ce_weight), float(dice_weight)
        self.prefix, self.align_corners = prefix, align_corners

    def forward(self, logits: Tensor, target: Tensor) -> dict[str, Tensor]:
        target = target.to(logits.device, torch.int64)
        logits = resize(logits, target.shape[-2:], self.align_corners).float()  # [B,C,H,W]
        valid = target != self.ignore_index
        out = {}
        if valid.any():
            ce = F.cross_entropy(logits, target, weight=self.class_weight, ignore_index=self.ignore_index)
        else:
            ce = logits.sum() * 0.0
        out[f"{self.prefix}ce"] = ce * self.ce_weight
        if self.dice_weight > 0:
            out[f"{self.prefix}dice"] = (
                dice_loss(logits, target, self.ignore_index, class_weight=self.class_weight) * self.dice_weight
            )
        return out


class SegLossKeys(TypedDict, total=False):
    """The loss keys every decode head takes beside its decoder arguments (``**loss: Unpack[SegLossKeys]``).

    ``ignore_index`` (255): the label never scored; ``class_weight`` (None): C per-class weights;
    ``loss_weight`` (1.0): the cross-entropy's weight; ``dice_weight`` (0.0: no Dice term); ``loss_prefix``
    (``'sem/'``): the loss keys' prefix. A head may have other defaults (FCNHead: 0.4, ``'sem/aux_'``).
    """

    ignore_index: int
    class_weight: Sequence[float] | None
    loss_weight: float
    dice_weight: float
    loss_prefix: str


def head_outputs(
    owner: str, channels: int, num_classes: int, dropout: float, align_corners: bool, loss: dict, **defaults: Any
) -> tuple[SegClassifier, SegCriterion]:
    """A decode head's classifier (``channels`` -> C logits) and its loss from the :class:`SegLossKeys` it got.

    ``defaults``: the head's own loss defaults. A key that is not a loss key is a TypeError naming ``owner``.
    """
    unknown = sorted(set(loss) - set(SegLossKeys.__annotations__))
    if unknown:
        raise TypeError(
            f"{owner} got unexpected keyword argument(s) {unknown}; besides its decoder arguments it takes "
            f"the loss keys {list(SegLossKeys.__annotations__)}"
        )
    renamed = {"loss_weight": "ce_weight", "loss_prefix": "prefix"}  # SegCriterion's names
    kwargs = {renamed.get(k, k): v for k, v in {**defaults, **loss}.items()}
    return SegClassifier(channels, num_classes, dropout), SegCriterion(
        num_classes, align_corners=align_corners, **kwargs
    )
