"""Names of a tool's outputs: one per input (``detkit track``, ``detkit explain``), and never an input's file."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["clobbered", "clobbering", "free_stem", "unique_stems"]


def free_stem(base: str, taken: set[str]) -> str:
    """``base``, or ``base_2``, ``base_3``... the first not in ``taken``; the name returned is added to ``taken``."""
    stem, k = base, 1
    while stem in taken:
        k += 1
        stem = f"{base}_{k}"
    taken.add(stem)
    return stem


def unique_stems(stems: Iterable[str]) -> list[str]:
    """Each stem, suffixed ``_2``, ``_3``... when an earlier one already took it: ``[a, a, b]`` -> ``[a, a_2, b]``
    (:func:`free_stem` in turn, as ``tools/infer.py``'s ``ResultWriter.unique_stem`` names its outputs)."""
    taken: set[str] = set()
    return [free_stem(base, taken) for base in stems]


def _keys(path: Path) -> set:
    """What identifies the file at ``path``: its resolved path (links followed) and, when it exists, its inode."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):  # a link loop
        resolved = path.absolute()
    keys: set = {os.path.normcase(os.fspath(resolved))}
    try:
        st = path.stat()
        keys.add((st.st_dev, st.st_ino))
    except OSError:
        pass
    return keys


def clobbered(outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike]) -> tuple[Path, Path] | None:
    """The first ``(output, input)`` where writing ``output`` would replace the file ``input`` (the same path,
    a link to it, or a hard link), or None."""
    index = {key: Path(item) for item in inputs for key in _keys(Path(item))}
    for out in map(Path, outputs):
        for key in _keys(out):
            if key in index:
                return out, index[key]
    return None


def clobbering(
    out_dir: str | os.PathLike,
    outputs: Iterable[str | os.PathLike],
    inputs: Iterable[str | os.PathLike],
    gt: str | os.PathLike | None = None,
) -> str | None:
    """A tool's one-line refusal when one of its ``outputs`` (under ``--out-dir out_dir``) would replace one of
    its ``inputs`` or its ``--gt`` file ``gt``; None when none would."""
    inputs = [*inputs, *([gt] if gt is not None else [])]
    clash = clobbered(outputs, inputs)
    if clash is None:
        return None
    given = f"--gt {gt}" if gt is not None and clash[1] == Path(gt) else f"the input {clash[1]}"
    return f"--out-dir {out_dir}: the output {clash[0]} would replace {given}; choose another --out-dir"
