"""Match files to the records of an annotation file by the last components of their paths.

A COCO ``file_name`` is relative to an image folder that the caller may not know (``sub/a.png``), and a file
given to a tool has its own path (``/data/val/sub/a.png``): they match on their longest common path suffix,
so ``val/a.png`` and ``train/a.png`` of one annotation file stay apart when the inputs' paths say which.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

__all__ = ["lookup", "other_files", "suffix_index"]


def _parts(name: str | os.PathLike) -> tuple[str, ...]:
    return tuple(p for p in Path(str(name).replace("\\", "/")).parts if p not in (".", "/"))


def suffix_index(records: Iterable[tuple[str | os.PathLike, T]]) -> dict[str, T]:
    """Every path suffix (``a.png``, ``sub/a.png``, ...) of each ``(file_name, value)`` -> the value of the first
    record that has it."""
    index: dict[str, T] = {}
    for name, value in records:
        parts = _parts(name)
        for k in range(1, len(parts) + 1):
            index.setdefault("/".join(parts[-k:]), value)
    return index


def lookup(index: dict[str, T], path: str | os.PathLike) -> T | None:
    """The value of ``path``'s longest suffix in ``index`` (from ``suffix_index``), or None."""
    parts = _parts(path)
    for n in range(len(parts), 0, -1):
        key = "/".join(parts[-n:])
        if key in index:
            return index[key]
    return None


def other_files(pairs: Iterable[tuple[str | os.PathLike, str | os.PathLike]]) -> list[tuple[str, str]]:
    """The ``(given, record)`` pairs, matched by name, where both files exist and are not the same file (a file of
    another split that has the record's name), sorted."""
    other = []
    for given, record in sorted({(os.fspath(a), os.fspath(b)) for a, b in pairs}):
        try:
            if os.path.isfile(given) and os.path.isfile(record) and not os.path.samefile(given, record):
                other.append((given, record))
        except OSError:
            continue
    return other
