"""Output helpers of the analyses: matplotlib on a headless backend, atomic PNG and CSV writes (no torch)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detkit.utils.files import atomic_write

__all__ = ["pyplot", "row_share_heatmap", "save_figure", "write_csv"]


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


def row_share_heatmap(
    confusion, names: Sequence[str], title: str, colorbar: str, percent: bool = False, cell: float = 0.4
):
    """Heat map of a [C,C] count matrix (rows true classes, columns predicted ones) coloured by the share of each
    row; the cells' text (up to 30 classes) is the count, or the share in percent with ``percent``. ``cell``: inches
    per class. Returns the figure."""
    import numpy as np

    plt = pyplot()
    share = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    n = len(names)
    side = max(4.0, min(24.0, cell * n + 2.5))
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), names, rotation=90 if n > 6 else 0, fontsize=7)
    ax.set_yticks(range(n), names, fontsize=7)
    ax.set(xlabel="predicted class", ylabel="true class" if not percent else "true class (ground truth)")
    ax.set_title(title, fontsize=9 if percent else None)
    for (i, j), c in np.ndenumerate(confusion) if n <= 30 else ():
        if c:
            text = f"{100 * share[i, j]:.1f}" if percent else str(c)
            ax.text(j, i, text, ha="center", va="center", fontsize=6, color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=colorbar)
    return fig
