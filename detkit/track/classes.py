"""Which classes to track: names or indices resolved against the model's class names, and the filter that keeps
only their detections before linking (Ultralytics' ``classes=``)."""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import torch

__all__ = ["keep_classes", "model_class_names", "resolve_classes"]


def model_class_names(model: Any) -> list[str]:
    """The class names of a detector, or of the first model of an ensemble given as a list."""
    first = model[0] if isinstance(model, (list, tuple)) and model else model
    return [str(n) for n in getattr(first, "class_names", None) or []]


def _listed(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(f"{i} {n}" for i, n in enumerate(names[:limit]))
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _one(item: Any, names: Sequence[str], lowered: list[str]) -> list[int]:
    """The label indices of one ``classes`` item: a class name (any case; every class of that name), else an
    index (an int, or a string of digits as the command line gives it)."""
    if isinstance(item, str):
        found = [i for i, n in enumerate(lowered) if n == item.strip().lower()]
        if found:
            return found
        if not item.strip().isdigit():
            near = difflib.get_close_matches(item.strip().lower(), lowered, n=3, cutoff=0.6)
            hint = (
                f"nearest: {', '.join(names[lowered.index(n)] for n in near)}" if near else f"it has {_listed(names)}"
            )
            raise ValueError(f"classes: the model has no class {item!r} ({hint})")
        item = int(item.strip())
    if isinstance(item, bool) or not isinstance(item, numbers.Integral):
        raise TypeError(f"classes: a class is a name or an index, got {type(item).__name__} {item!r}")
    if not 0 <= int(item) < len(names):
        raise ValueError(f"classes: index {item} is not a class of the model ({len(names)} classes: {_listed(names)})")
    return [int(item)]


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
    if not names:
        raise ValueError("classes: the model has no class names to choose from")
    lowered = [n.lower() for n in names]
    return sorted({i for item in items for i in _one(item, names, lowered)})


def keep_classes(det: dict, classes: Iterable[int] | None) -> dict:
    """One frame's detections (``boxes``, ``scores``, ``labels``) of the labels ``classes`` only (None: all)."""
    if classes is None:
        return det
    labels = torch.as_tensor(det["labels"])
    keep = torch.isin(labels, torch.as_tensor(list(classes), dtype=labels.dtype))
    return {k: torch.as_tensor(det[k])[keep] for k in ("boxes", "scores", "labels")}
