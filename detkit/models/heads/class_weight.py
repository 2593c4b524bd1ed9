"""Per-class weights of the classification losses (``class_weight`` of ClsHead, RoIBoxHead, YOLOHead).

A weight multiplies the loss terms of its class; the normaliser of each loss is unchanged (the number of
samples, RoIs or the assigner's soft-target sum), so all-ones weights give the unweighted loss exactly and a
distributed step stays equal to one process's. Rare classes get weights above 1 (e.g. ``(n_max / n_c) ** 0.5``
from the per-class counts that training logs with ``data.repeat_threshold``, docs/training.md). A config may
give ``class_weight: balanced | sqrt`` instead: training resolves it from the training set's counts before it
builds the model (``detkit.data.class_freq``, ``detkit.engine.parts.resolve_class_weights``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def class_weight_tensor(values: Sequence[float] | None, num_classes: int, owner: str) -> Tensor | None:
    """``values`` as float32 [C] (None stays None); a ValueError naming ``owner`` unless C numbers >= 0."""
    if values is None:
        return None
    if isinstance(values, str):  # 'balanced' / 'sqrt': turned into numbers by training, from the data
        raise ValueError(
            f"{owner}.class_weight {values!r} is computed from the training set's class counts when training "
            "starts; to build the model elsewhere give the list (a run's config.yaml holds the resolved one)"
        )
    weight = torch.as_tensor([float(v) for v in values], dtype=torch.float32)
    if weight.shape != (num_classes,) or bool((weight < 0).any()):
        raise ValueError(f"{owner}.class_weight must be {num_classes} numbers >= 0 (one per class), got {list(values)}")
    return weight


def weight_of_labels(weight: Tensor | None, labels: Tensor, background: float = 1.0) -> Tensor | None:
    """Per-sample weights [N] of class indices ``labels`` [N]; index C (background) gets ``background``."""
    if weight is None:
        return None
    full = torch.cat([weight.to(labels.device), weight.new_full((1,), background).to(labels.device)])
    return full[labels.clamp(max=weight.numel())]
