"""Which classes to track: names or indices resolved against the model's class names, and the filter that keeps
only their detections before linking (Ultralytics' ``classes=``)."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from detkit.utils.class_names import ClassNameError, class_indices

__all__ = ["keep_classes", "model_class_names", "resolve_classes"]


def model_class_names(model: Any) -> list[str]:
    """The class names of a detector, or of the first model of an ensemble given as a list."""
    first = model[0] if isinstance(model, (list, tuple)) and model else model
    return [str(n) for n in getattr(first, "class_names", None) or []]


def _one(item: Any, names: Sequence[str]) -> list[int]:
    """The label indices of one ``classes`` item: every class of a name (any case), else an index (an int, or a
    string of digits as the command line gives it): :func:`detkit.utils.class_names.class_indices`."""
    try:
        return class_indices(item, names)
    except ClassNameError as e:
        raise ValueError(f"classes: {e}") from None
    except TypeError as e:
        raise TypeError(f"classes: {e}") from None


def resolve_classes(classes: Any, class_names: Sequence[str]) -> list[int] | None:
    """The sorted label indices of ``classes`` (a name or an index, or a list of them; names match in any case);
    None when ``classes`` is None (every class). An unknown name or an index out of range is a ValueError that
    names the nearest classes."""
    if classes is None:
        return None
    items = [classes] if isinstance(classes, (str, numbers.Integral)) else list(classes)
    if not items:
        raise ValueError("classes: an empty list would track nothing; give class names or indices, or None (all)")
    names = list(class_names)
    return sorted({i for item in items for i in _one(item, names)})


def keep_classes(det: dict, classes: Iterable[int] | None) -> dict:
    """One frame's detections (``boxes``, ``scores``, ``labels``) of the labels ``classes`` only (None: all)."""
    if classes is None:
        return det
    labels = torch.as_tensor(det["labels"])
    keep = torch.isin(labels, torch.as_tensor(list(classes), dtype=labels.dtype))
    return {k: torch.as_tensor(det[k])[keep] for k in ("boxes", "scores", "labels")}
