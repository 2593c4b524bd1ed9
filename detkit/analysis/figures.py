"""Output helpers of the analyses: matplotlib on a headless backend, atomic PNG and CSV writes (no torch)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detkit.utils.files import atomic_write

__all__ = ["pyplot", "save_figure", "write_csv"]


def pyplot():
    """matplotlib.pyplot on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save and close a figure atomically (tmp file + rename); returns the path.

    The format follows the suffix (png, pdf, svg, jpg, ...); another suffix is a ``ValueError`` naming it.
    """
    plt = pyplot()
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        plt.close(fig)
        raise ValueError(f"{path}: matplotlib cannot write '.{fmt}' files; use one of .{', .'.join(sorted(supported))}")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()))
    return path


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    """Write a CSV file atomically."""
    text = io.StringIO()
    w = csv.writer(text, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    atomic_write(path, lambda f: f.write(text.getvalue().encode("utf-8")))
    return Path(path)
