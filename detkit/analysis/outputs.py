"""An analysis' own earlier outputs in its ``--out-dir``: removed before a run writes its new ones, so that the
drawings of two runs are never mixed in one folder (no torch)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

__all__ = ["DRAWING_NAME", "remove_earlier_outputs"]

# the analyses' drawings: worst/01_x.jpg, best/02_image7.jpg, worst/01_cat_c3.jpg (rank, then names)
DRAWING_NAME = re.compile(r"\d{2,}_.+\.jpg")


def _remove(path: Path) -> bool:
    """Unlink ``path`` when it is a file (or a link, not its target); True when removed."""
    if path.is_symlink() or path.is_file():
        path.unlink()
        return True
    return False


def remove_earlier_outputs(
    out_dir: str | os.PathLike, names: Iterable[str], drawing_folders: Iterable[str] = ()
) -> list[Path]:
    """Remove what an earlier run of an analysis wrote into ``out_dir``: its files ``names`` and, in each of its
    ``drawing_folders`` (``worst``, ``best``), the drawings named ``NN_<...>.jpg``; a drawing folder left empty
    goes too. Anything else (a file of the user's, another name, a sub-folder) is left as it is.

    Returns the paths removed.
    """
    out = Path(out_dir)
    removed = [out / name for name in names if _remove(out / name)]
    for sub in drawing_folders:
        folder = out / sub
        if folder.is_symlink() or not folder.is_dir():
            continue
        removed += [p for p in sorted(folder.iterdir()) if DRAWING_NAME.fullmatch(p.name) and _remove(p)]
        if not any(folder.iterdir()):
            folder.rmdir()
    return removed
