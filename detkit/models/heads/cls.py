"""Image classification head: global average pooling, optional dropout, one linear layer."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detkit.models.heads.class_weight import class_weight_tensor
from detkit.registry import HEADS


def _indices(in_index: int | Sequence[int], num_levels: int) -> list[int]:
    """``in_index`` as a list of non-negative level indices (negative ones count from the last level)."""
    given = [int(in_index)] if isinstance(in_index, int) else [int(i) for i in in_index]
    out = [i + num_levels if i < 0 else i for i in given]
    if not out or any(not 0 <= i < num_levels for i in out) or len(set(out)) != len(out):
        raise ValueError(
            f"ClsHead in_index {in_index} must pick distinct levels among the {num_levels} maps the backbone "
            f"(or neck) gives (0..{num_levels - 1}, or -1 for the last)"
        )
    return out


@HEADS.register
class ClsHead(nn.Module):
    """Global average pooling of the chosen feature maps, concatenated, then dropout and a linear layer.

    Args:
        num_classes: C.
        in_channels: channels of every map the backbone (or neck) gives, or of the last one (an int).
        in_index: which maps to pool: an index into the maps (default -1: the last, stride 32) or a list of
            them (their pooled vectors are concatenated).
        dropout: dropout probability before the linear layer (0: none).
        label_smoothing: of the cross entropy (torchvision's reference ImageNet recipes use 0.1).
        loss_weight: multiplies ``cls/ce``.
        class_weight: optional C weights of the classes' cross-entropy terms (rare classes > 1; the mean over
            the batch is kept, ``detkit.models.heads.class_weight``).

    ``forward(feats)`` -> logits float [B,C]; ``loss(logits, targets)`` -> ``{"cls/ce"}``;
    ``predict(logits, topk)`` -> per image ``{"scores": float [C] probabilities, "labels": int64 [k]}``.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int | Sequence[int],
        in_index: int | Sequence[int] = -1,
        dropout: float = 0.0,
        label_smoothing: float = 0.0,
        loss_weight: float = 1.0,
        class_weight: Sequence[float] | None = None,
    ):
        super().__init__()
        channels = [int(in_channels)] if isinstance(in_channels, int) else [int(c) for c in in_channels]
        self.in_index = _indices(in_index, len(channels))
        if not 0.0 <= dropout < 1.0 or not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"ClsHead dropout and label_smoothing must be in [0, 1), got {dropout}, {label_smoothing}")
        if int(num_classes) < 1:
            raise ValueError(f"ClsHead num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.in_channels = channels
        self.label_smoothing, self.loss_weight = float(label_smoothing), float(loss_weight)
        self.register_buffer(
            "class_weight", class_weight_tensor(class_weight, self.num_classes, "ClsHead"), persistent=False
        )
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(sum(channels[i] for i in self.in_index), self.num_classes)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        """Logits [B,C] of feature maps ``feats`` (each [B,C_i,H_i,W_i], as the backbone gives them)."""
        if len(feats) != len(self.in_channels):
            raise ValueError(
                f"ClsHead was built for {len(self.in_channels)} feature maps (in_channels {self.in_channels}) "
                f"but got {len(feats)}; set in_channels to the backbone's out_channels"
            )
        pooled = [feats[i].mean(dim=(2, 3)) for i in self.in_index]  # each [B,C_i]
        x = pooled[0] if len(pooled) == 1 else torch.cat(pooled, dim=1)  # [B,sum C_i]
        return self.fc(self.dropout(x))  # [B,C]

    def loss(self, logits: Tensor, targets: Tensor) -> dict[str, Tensor]:
        """Cross entropy (with ``label_smoothing``) of logits [B,C] against class indices int64 [B] or
        class probabilities float [B,C] (mixup / cutmix); returns ``{"cls/ce": scalar}``."""
        if targets.dim() == 1:
            bad = (targets < 0) | (targets >= self.num_classes)
            if bool(bad.any()):
                values = sorted(set(targets[bad].tolist()))[:5]
                raise ValueError(
                    f"class label(s) {values} outside 0..{self.num_classes - 1}: the model has num_classes="
                    f"{self.num_classes}; check the dataset's classes and model.num_classes"
                )
        elif targets.shape != logits.shape:
            raise ValueError(f"soft targets must be [B,C] = {tuple(logits.shape)}, got {tuple(targets.shape)}")
        if self.class_weight is None:
            ce = F.cross_entropy(logits.float(), targets, label_smoothing=self.label_smoothing)
        else:  # a sample's term times its class's weight (soft targets: their mix), still a mean over B
            ce = F.cross_entropy(logits.float(), targets, label_smoothing=self.label_smoothing, reduction="none")
            ce = (
                ce * (self.class_weight[targets] if targets.dim() == 1 else targets.float() @ self.class_weight)
            ).mean()
        return {"cls/ce": ce * self.loss_weight}

    @torch.no_grad()
    def predict(self, logits: Tensor, topk: int = 5) -> list[dict[str, Tensor]]:
        """Per image ``scores`` float32 [C] (softmax) and ``labels`` int64 [k]: the ``min(topk, C)`` most
        likely classes, most likely first."""
        probs = logits.float().softmax(dim=1)  # [B,C]
        k = max(1, min(int(topk), self.num_classes))
        top = probs.topk(k, dim=1).indices  # [B,k]
        return [{"scores": p, "labels": t.to(torch.int64)} for p, t in zip(probs, top)]
