"""Names of a tool's outputs: one per input (``detkit track``, ``detkit explain``), and never an input's file."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "clobbered",
    "clobbering",
    "data_paths",
    "foreign_outputs",
    "free_stem",
    "manifest_names",
    "refuse_foreign",
    "unique_stems",
]


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


def foreign_outputs(outputs: Iterable[str | os.PathLike], ours: Iterable[str]) -> list[Path]:
    """The ``outputs`` that exist already and are not among ``ours`` (the names an earlier run of the same tool
    wrote there, from its manifest: :func:`manifest_names`): files of the user's that writing would replace."""
    mine = set(ours)
    return [p for p in map(Path, outputs) if p.name not in mine and p.exists()]


def manifest_names(path: str | os.PathLike, keys: Iterable[str]) -> set[str]:
    """The file names an earlier run listed in its JSON manifest ``path`` (a list of records, or ``{"images":
    [...]}``), under ``keys`` of each record; the manifest's own name too. Empty when there is none or it does
    not read as one (then nothing in the folder counts as the tool's own)."""
    import json

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    records = data.get("images") if isinstance(data, dict) else data
    names = {path.name}
    for record in records if isinstance(records, list) else []:
        for key in keys:
            value = record.get(key) if isinstance(record, dict) else None
            if isinstance(value, str) and value:
                names.add(Path(value).name)
    return names


def refuse_foreign(out_dir: str | os.PathLike, outputs: Iterable[str | os.PathLike], ours: Iterable[str]) -> str | None:
    """A tool's one-line refusal when writing its ``outputs`` would replace files in ``out_dir`` that it did not
    write (:func:`foreign_outputs`); None when there are none."""
    foreign = foreign_outputs(outputs, ours)
    if not foreign:
        return None
    shown = ", ".join(p.name for p in foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
    return (
        f"--out-dir {out_dir} holds {shown}, which this run would replace and an earlier run of this tool did not "
        "write there; choose another --out-dir (an empty or new folder)"
    )


def is_inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """``path`` (existing or not) is ``folder`` or lies below it, links resolved; False when either cannot be
    resolved."""
    try:
        return Path(path).resolve().is_relative_to(Path(folder).resolve())
    except (OSError, RuntimeError):
        return False


def data_paths(node, keys: tuple[str, ...], path: str = "data"):
    """``(key path, Path)`` of every value under one of ``keys`` below ``node`` (a config's ``data`` section:
    wrappers' ``dataset`` and lists included), e.g. ``("data.train.dataset.img_dir", Path(...))``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in keys and isinstance(value, (str, os.PathLike)) and str(value):
                yield f"{path}.{key}", Path(value)
            else:
                yield from data_paths(value, keys, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from data_paths(value, keys, f"{path}.{i}")
