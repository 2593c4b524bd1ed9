"""An analysis' own outputs in its ``--out-dir``: each run records the files it wrote in a manifest
(``.analyze_outputs.json``), and the next run removes exactly those before writing its new ones, so that the
drawings of two runs are never mixed in one folder. A file that no manifest lists is never removed: a run that
would write over one is refused (:class:`ForeignOutputError`) before anything is written (no torch)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from detkit.utils.files import atomic_write

__all__ = [
    "MANIFEST",
    "ForeignOutputError",
    "foreign_outputs",
    "recorded_outputs",
    "recorded_run",
    "refuse_foreign_outputs",
    "remove_earlier_outputs",
]

# the record of what a run of analyze wrote into its --out-dir (paths relative to it, '/'-separated)
MANIFEST = ".analyze_outputs.json"


class ForeignOutputError(ValueError):
    """A run would write over a file of its ``--out-dir`` that no earlier run of analyze recorded (the user's)."""


def _safe_relative(name: object) -> str | None:
    """``name`` when it is a relative '/'-separated path that stays inside the folder, else None."""
    if not isinstance(name, str) or not name or "\\" in name:
        return None
    path = PurePosixPath(name)
    if path.is_absolute() or any(part in ("", ".", "..") for part in name.split("/")):
        return None
    return path.as_posix()


def recorded_outputs(out_dir: str | os.PathLike) -> set[str]:
    """The files (relative paths) that the last run of analyze recorded in ``out_dir``'s manifest, and the manifest;
    empty when there is none or it does not read as one (then nothing in the folder counts as analyze's own)."""
    try:
        data = json.loads((Path(out_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list):
        return set()
    return {MANIFEST, *(name for name in map(_safe_relative, files) if name)}


def foreign_outputs(out_dir: str | os.PathLike, planned: Iterable[str]) -> list[str]:
    """The ``planned`` outputs (relative paths) that exist in ``out_dir`` and that no manifest lists: files of the
    user's that writing would replace."""
    out, ours = Path(out_dir), recorded_outputs(out_dir)
    return [name for name in planned if name not in ours and ((out / name).exists() or (out / name).is_symlink())]


def refuse_foreign_outputs(out_dir: str | os.PathLike, planned: Iterable[str]) -> str | None:
    """The one-line refusal when writing ``planned`` would replace files in ``out_dir`` that analyze did not
    write (:func:`foreign_outputs`); None when there are none."""
    foreign = foreign_outputs(out_dir, planned)
    if not foreign:
        return None
    shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
    return (
        f"--out-dir {out_dir} holds {shown}, which this analysis would replace and no earlier run of analyze "
        f"recorded in {MANIFEST}; choose another --out-dir (an empty or new folder), or move those files away"
    )


def _inside_real_folders(out: Path, name: str) -> bool:
    """``out/name``'s folders below ``out`` are real folders (no link leads the removal elsewhere)."""
    folder = out
    for part in PurePosixPath(name).parts[:-1]:
        folder = folder / part
        if folder.is_symlink() or not folder.is_dir():
            return False
    return True


def remove_earlier_outputs(out_dir: str | os.PathLike) -> list[Path]:
    """Remove the files that the last run of analyze recorded in ``out_dir`` (:func:`recorded_outputs`) and its
    manifest; a sub-folder (``worst/``, ``best/``) left empty goes too. Nothing else is touched, and no link to a
    folder is followed. Returns the paths removed."""
    out = Path(out_dir)
    recorded = sorted(recorded_outputs(out))
    removed = []
    for name in recorded:
        path = out / name
        if _inside_real_folders(out, name) and (path.is_symlink() or path.is_file()):
            path.unlink()
            removed.append(path)
    for folder in sorted({(out / name).parent for name in recorded} - {out}, key=lambda p: -len(p.parts)):
        if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
            folder.rmdir()
    return removed


def _write_manifest(out: Path, mode: str, files: Iterable[str]) -> None:
    """Record ``files`` (relative paths) as what analyze's ``mode`` wrote into ``out`` (atomically)."""
    text = json.dumps({"tool": "detkit analyze", "mode": mode, "files": sorted(set(files))}, indent=1)
    atomic_write(out / MANIFEST, lambda f: f.write(text.encode()))


@contextmanager
def recorded_run(out_dir: str | os.PathLike, planned: Iterable[str], mode: str) -> Iterator[Path]:
    """Prepare ``out_dir`` for a run that writes ``planned`` (relative paths) and record what it wrote.

    Refuses (:class:`ForeignOutputError`, nothing written) when a planned file exists that no manifest lists;
    else removes the earlier run's recorded outputs, records ``planned`` before anything is written (a run cut
    short leaves nothing unrecorded) and, when the block ends (done or failed), records those that exist.
    Yields ``out_dir`` as a Path (made when missing).
    """
    out, planned = Path(out_dir), sorted({name for name in map(_safe_relative, planned) if name})
    problem = refuse_foreign_outputs(out_dir, [*planned, MANIFEST])  # a file of that name that is no manifest
    if problem is not None:
        raise ForeignOutputError(problem)
    out.mkdir(parents=True, exist_ok=True)
    remove_earlier_outputs(out)
    _write_manifest(out, mode, planned)
    try:
        yield out
    finally:
        _write_manifest(out, mode, [name for name in planned if (out / name).is_file()])
