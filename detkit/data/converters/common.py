"""Shared pieces of the dataset converters: class lists, image sizes, safe names, atomic writes."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from detkit.data.validate import DatasetError   # one error type for every bad-dataset message

__all__ = ["DatasetError", "IMAGE_EXTS", "read_class_names", "image_size", "write_json_atomic"]

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def read_class_names(path: str | os.PathLike) -> list[str]:
    """Class names from a text file, one per line (blank lines ignored, duplicates rejected)."""
    p = Path(path)
    try:
        names = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{p}: cannot read class names ({e})") from e
    if not names:
        raise DatasetError(f"{p}: no class names; write one class name per line")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DatasetError(f"{p}: duplicate class names {dup}; each class must appear once")
    return names


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of an image file after EXIF orientation, read from its header (Pillow)."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except (OSError, UnidentifiedImageError) as e:
        raise DatasetError(f"{path}: cannot read image ({e}); is the file a valid image?") from e
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def write_json_atomic(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` as JSON to ``path`` through a temporary file + rename."""
    _write_text_atomic(Path(path), json.dumps(obj))


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _safe_relpath(name: str, where: str) -> str:
    """Reject file names that would escape the image folder (absolute paths, '..')."""
    p = Path(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not name.strip():
        raise DatasetError(f"{where}: image file name {name!r} must be a relative path inside the image folder")
    return p.as_posix()


def _check_output(out: Path, inputs: Iterable[Path]) -> None:
    for i in inputs:
        if out.exists() and i.exists() and out.resolve() == i.resolve():
            raise DatasetError(f"{out}: the output would overwrite an input; choose another output path")


def _categories(names: list[str]) -> list[dict]:
    return [{"id": i + 1, "name": n, "supercategory": "none"} for i, n in enumerate(names)]


def _list_images(img_dir: Path) -> list[Path]:
    if not img_dir.is_dir():
        raise DatasetError(f"{img_dir}: image folder not found")
    return sorted(p for p in img_dir.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
