"""Class names a user gives, resolved to class indices by one rule (explain's ``target_class``, track's
``classes``, a COCO dataset's kept ``classes``).

The rule: a name selects every class whose name equals it in any case (``car`` selects ``Car`` and ``car``);
where one class is needed (:func:`class_index`) and a name selects several, the one spelt exactly as given wins,
else the name is ambiguous. A name that selects nothing is an index when it is an integer (``"2"``, as a command
line gives it; unless ``indices=False``), else unknown: the message names the nearest names (difflib, any case)
or lists the classes. An index is an int 0..C-1. Every mistake is a :class:`ClassNameError` (a ValueError) that
callers re-raise as their own error type; a value that is neither a name nor an index is a TypeError.
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Sequence
from typing import Any

__all__ = ["ClassNameError", "class_index", "class_indices", "class_listing", "nearest_names"]

NEAREST_SHOWN = 3  # names an unknown name's message suggests
NEAREST_CUTOFF = 0.6  # difflib's similarity a suggestion needs


class ClassNameError(ValueError):
    """A class name or index that names no class, or several where one is needed.

    ``kind`` is ``'unknown'``, ``'ambiguous'``, ``'out_of_range'`` or ``'no_classes'``; ``nearest`` the
    suggested names (unknown names only).
    """

    def __init__(self, message: str, kind: str, nearest: Sequence[str] = ()):
        super().__init__(message)
        self.kind = kind
        self.nearest = list(nearest)


def nearest_names(name: str, names: Sequence[str], n: int = NEAREST_SHOWN) -> list[str]:
    """Up to ``n`` of ``names`` most like ``name`` in any case ("did you mean"), most similar first, as spelt in
    ``names``, each once; [] when none is similar enough."""
    lowered = list(dict.fromkeys(str(x).casefold() for x in names))
    near = difflib.get_close_matches(name.strip().casefold(), lowered, n=n, cutoff=NEAREST_CUTOFF)
    return list(dict.fromkeys(str(x) for low in near for x in names if str(x).casefold() == low))[:n]


def class_listing(names: Sequence[str], limit: int = 12) -> str:
    """``0 circle, 1 square, ...`` (the first ``limit`` classes with their indices, then the count)."""
    shown = ", ".join(f"{i} {n}" for i, n in enumerate(names[:limit]))
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _as_index(spec: Any) -> int | None:
    """``spec`` as an index: an int (not a bool) or an integer string (``"2"``, ``"-1"``); None otherwise."""
    if isinstance(spec, str):
        text = spec.strip()
        return int(text) if text.lstrip("+-").isdigit() else None
    if isinstance(spec, numbers.Integral) and not isinstance(spec, bool):
        return int(spec)
    return None


def _unknown(name: str, names: Sequence[str], owner: str) -> ClassNameError:
    near = nearest_names(name, names)
    if near:
        text = f"{owner} has no class {name!r} (nearest: {', '.join(near)}); its classes: {class_listing(names)}"
    else:
        text = f"{owner} has no class {name!r} (it has {class_listing(names)})"
    return ClassNameError(text, "unknown", near)


def class_indices(spec: Any, class_names: Sequence[str], owner: str = "the model", indices: bool = True) -> list[int]:
    """Every class index ``spec`` names, ascending: the classes whose name equals it in any case, else (``indices``)
    the class of that index.

    Raises:
        ClassNameError: an unknown name, an index out of range, or no class names at all.
        TypeError: ``spec`` is neither a name nor an index.
    """
    names = [str(n) for n in class_names]
    if not names:
        raise ClassNameError(f"{owner} has no class names to choose from", "no_classes")
    if isinstance(spec, str):
        wanted = spec.strip().casefold()
        found = [i for i, n in enumerate(names) if n.casefold() == wanted]
        if found:
            return found
        if not indices or _as_index(spec) is None:
            raise _unknown(spec.strip(), names, owner)
    index = _as_index(spec) if indices else None
    if index is None:
        what = "a name" if not indices else "a name or an index"
        raise TypeError(f"a class is {what}, got {type(spec).__name__} {spec!r}")
    if not 0 <= index < len(names):
        raise ClassNameError(
            f"index {index} is not a class of {owner} ({len(names)} classes: {class_listing(names)})", "out_of_range"
        )
    return [index]


def class_index(spec: Any, class_names: Sequence[str], owner: str = "the model") -> int:
    """The one class ``spec`` names: :func:`class_indices`, where a name of several classes must be spelt exactly
    as one of them.

    Raises:
        ClassNameError: as :func:`class_indices`, or ``kind='ambiguous'``.
        TypeError: ``spec`` is neither a name nor an index.
    """
    found = class_indices(spec, class_names, owner)
    if len(found) == 1:
        return found[0]
    names = [str(n) for n in class_names]
    exact = [i for i in found if names[i] == str(spec).strip()]
    if len(exact) == 1:
        return exact[0]
    listed = ", ".join(f"{i} {names[i]}" for i in found)
    raise ClassNameError(
        f"class {str(spec).strip()!r} names {len(found)} classes of {owner} ({listed}): give the exact name or the index",
        "ambiguous",
    )
