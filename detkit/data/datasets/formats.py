"""What the datasets of other formats (``YOLODataset``, ``VOCDataset``) share: options, problem records, reports."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypedDict

from detkit.data.image_cache import CacheMode
from detkit.data.image_io import UnsafePathError, safe_join
from detkit.data.validate import DatasetError, Problem

if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # Python 3.10
    from typing_extensions import Unpack

__all__ = ["CocoOptions", "ProblemLog", "Unpack", "coco_dict", "warn_unused_files"]

SHOWN = 5  # files named in a warning


class CocoOptions(TypedDict, total=False):
    """The ``CocoDataset`` options a dataset of another format passes on (``**options: Unpack[CocoOptions]``;
    ``on_error`` is a parameter of its own, as of every dataset).

    See :class:`detkit.data.datasets.coco.CocoDataset`: ``pipeline``, ``with_masks``, ``with_sem_seg``,
    ``sem_background``, ``filter_empty``, ``skip_bad_images``, ``max_outside``, ``cache``,
    ``cache_dir``.
    """

    pipeline: Sequence[dict] | Callable | None
    with_masks: bool
    with_sem_seg: bool
    sem_background: bool
    filter_empty: bool
    skip_bad_images: bool
    max_outside: float
    cache: CacheMode
    cache_dir: str | None


class ProblemLog:
    """The problems found while reading a dataset of another format, as ``validate.Problem`` records.

    Called as ``log(record, error)`` (a converter's ``on_problem`` handler): ``record`` is ``'image'`` (the
    image is left out) or ``'annotation'`` (one object is left out); ``kind`` names what went wrong.
    ``CocoDataset`` raises on them, or drops them with a warning under ``on_error: skip``.
    """

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def __call__(self, record: str, error: Exception, kind: str | None = None) -> None:
        kind = kind or ("bad_label" if record == "annotation" else "bad_image")
        self.problems.append(Problem(kind, str(error), record=record))

    def image_path(self, img_dir: str | os.PathLike, rel: str, where: str) -> str | None:
        """``safe_join(img_dir, rel)``, or None with an ``unsafe_path`` problem (``where``: the record)."""
        try:
            return safe_join(img_dir, rel)
        except UnsafePathError as e:
            self("image", DatasetError(f"{where}: {e}"), "unsafe_path")
            return None


def coco_dict(images: list[dict], annotations: list[dict], names: Sequence[str], source: str) -> dict:
    """A COCO dict with category ids 1..C in the order of ``names``."""
    return {
        "info": {"description": f"read from {source} by detkit"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": str(n)} for i, n in enumerate(names)],
    }


def warn_unused_files(files: list[Path], what: str, fix: str) -> None:
    """One warning naming the first files of ``files`` (e.g. label files without an image), if any."""
    if not files:
        return
    shown = ", ".join(os.fspath(f) for f in files[:SHOWN]) + (
        f", ... ({len(files) - SHOWN} more)" if len(files) > SHOWN else ""
    )
    warnings.warn(f"{len(files)} {what}: {shown}; {fix}", stacklevel=4)
