"""Shared pieces of the dataset converters: class lists, image sizes, safe names, input checks, atomic writes."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from detkit.data.image_io import IMAGE_SUFFIXES
from detkit.data.validate import DatasetError  # one error type for every bad-dataset message
from detkit.utils.files import atomic_write

__all__ = [
    "IMAGE_EXTS",
    "DatasetError",
    "ImageProblems",
    "ProblemHandler",
    "categories_from_names",
    "check_output",
    "check_output_kind",
    "image_size",
    "list_images",
    "plain_name",
    "read_class_names",
    "refuse_existing",
    "require_dir",
    "safe_relpath",
    "write_json_atomic",
    "write_outputs",
    "write_text_atomic",
]

# ``handler(record, error)``: a bad ``'image'`` or ``'annotation'`` is reported and left out instead of raising.
ProblemHandler = Callable[[str, DatasetError], None]


class ImageProblems:
    """The problems of one image's labels, passed on to ``log`` by :meth:`flush`, which leaves the image out when
    one of its objects was bad: kept without that object, the image would teach it as background (Ultralytics
    drops an image with a corrupt label line too). Called as a ``ProblemHandler``."""

    def __init__(self, log: Callable[..., None]):
        self.log, self.found = log, []

    def __call__(self, record: str, error: Exception, kind: str | None = None) -> None:
        self.found.append((record, error, kind))

    def flush(self, image: str | os.PathLike) -> bool:
        """Report what was found for ``image`` (and start afresh); True when the image is to be left out."""
        found, self.found = self.found, []
        for record, error, kind in found:
            self.log(record, error) if kind is None else self.log(record, error, kind)
        bad = sum(record == "annotation" for record, _, _ in found)
        if bad:
            error = DatasetError(
                f"{os.fspath(image)}: left out with its {bad} bad label(s) named above (kept without them, the "
                "image would teach their objects as background)"
            )
            self.log("image", error, "bad_annotation")
        return bad > 0


IMAGE_EXTS = IMAGE_SUFFIXES


def require_dir(path: str | os.PathLike, flag: str, what: str) -> Path:
    """``path`` as a Path when it is a folder; else a DatasetError naming ``flag`` (e.g. ``--img-dir``)."""
    p = Path(path)
    if not p.is_dir():
        state = "is a file, not a folder" if p.exists() else "not found"
        raise DatasetError(f"{flag} {p}: {what} {state}")
    return p


def _not_a_name_list(text: str) -> str | None:
    """What a classes file's text is when it is no list of names: ``'a JSON file'``, ``'a YAML mapping'``, ...; else None."""
    import yaml

    if "\x00" in text:
        return "a binary file"
    try:
        data = yaml.safe_load(text)  # JSON is YAML too
    except yaml.YAMLError:
        return None  # not YAML: plain text
    if text.lstrip().startswith(("{", "[")) and isinstance(data, (dict, list)):
        return "a JSON file (a COCO annotation file?)"
    if isinstance(data, dict):
        return "a YAML mapping (a data.yaml or a config?)"
    if isinstance(data, list):
        return "a YAML list"
    return None


def read_class_names(path: str | os.PathLike) -> list[str]:
    """Class names from a text file, one per line (blank lines ignored, duplicates rejected).

    A file that is JSON, a YAML mapping or list, or binary is refused (read line by line it would give
    nonsense names, e.g. a COCO json taken for a one-class list).
    """
    p = Path(path)
    fix = "give a text file with one class name per line (e.g. the classes.txt written by coco2yolo)"
    if not p.is_file():
        state = "is a folder" if p.is_dir() else "not found"
        raise DatasetError(f"classes file {p} {state}; {fix}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"classes file {p}: cannot read it ({e}); it must be UTF-8 text, one name per line") from e
    what = _not_a_name_list(text)
    if what:
        raise DatasetError(f"classes file {p} is {what}, not a list of class names; {fix}")
    names = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not names:
        raise DatasetError(f"classes file {p} is empty; write one class name per line")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DatasetError(f"classes file {p}: duplicate class names {dup}; each class must appear once")
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
    write_text_atomic(Path(path), json.dumps(obj))


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same folder + rename."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def safe_relpath(name: str, where: str) -> str:
    """Reject file names that would escape the image folder (absolute paths, '..')."""
    p = Path(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not name.strip():
        raise DatasetError(f"{where}: image file name {name!r} must be a relative path inside the image folder")
    return p.as_posix()


def plain_name(value: str, flag: str, role: str, example: str, empty_ok: bool = False) -> str:
    """``value`` when it can be part of a file name inside the output folder: no ``/``, ``\\``, ``..`` or NUL,
    and not blank unless ``empty_ok``; else a DatasetError naming ``flag`` (e.g. ``--split``) and the fix."""
    if any(bad in value for bad in ("/", "\\", "..", "\x00")) or not (value.strip() or empty_ok):
        blank = "" if empty_ok else ", not empty"
        raise DatasetError(
            f"{flag} {value!r}: give a plain name without '/', '\\' or '..'{blank} ({role}, inside the output "
            f"folder), e.g. {flag} {example}"
        )
    return value


def refuse_existing(outputs: Iterable[Path], flag: str, target: Path, fix: str) -> None:
    """Refuse outputs that exist already (a user's own file, an earlier run): converters never overwrite.

    ``target`` is the ``flag``'s path (the file, or the output folder); ``fix`` says what to do instead.
    """
    existing = [p for p in outputs if os.path.lexists(p)]
    if existing == [target]:
        raise DatasetError(f"{flag} {target} exists already; converters never overwrite: {fix}")
    if existing:
        raise DatasetError(
            f"{flag} {target}: {len(existing)} output file(s) exist already (e.g. {existing[0]}); converters "
            f"never overwrite: {fix}"
        )


def check_output(outputs: Iterable[Path], inputs: Iterable[Path], flag: str) -> None:
    """Refuse an output path that is one of the input files (it would overwrite what the user gave)."""
    taken = {p.resolve() for p in inputs if p.exists()}
    for out in outputs:
        if out.resolve() in taken:
            raise DatasetError(
                f"{flag} {out} is also an input of this conversion; writing it would overwrite the "
                f"input: choose another path"
            )


def check_output_kind(path: Path, flag: str, folder: bool = False) -> None:
    """Refuse an output that exists as the other kind: a folder where a file goes, or a file for a folder."""
    if folder and path.exists() and not path.is_dir():
        raise DatasetError(f"{flag} {path} is a file, not a folder; choose another {flag}")
    if not folder and path.is_dir():
        raise DatasetError(f"{flag} {path} is a folder; give a file name (e.g. {path / 'out.json'})")


def write_outputs(outputs: dict[Path, str], flag: str, target: Path) -> None:
    """Write each ``{path: text}`` atomically; an OSError becomes a DatasetError naming ``flag`` and the folder."""
    try:
        for path, text in outputs.items():
            write_text_atomic(path, text)
    except (FileExistsError, NotADirectoryError) as e:  # a file where the path needs a folder
        raise DatasetError(f"{flag} {target}: {e.filename} is, or lies under, a file; choose another {flag}") from e
    except OSError as e:
        where = Path(e.filename).parent if e.filename else target
        raise DatasetError(
            f"{flag} {target}: cannot write in {where} ({e.strerror}); choose a folder you can write to"
        ) from e


def categories_from_names(names: list[str]) -> list[dict]:
    """COCO categories with ids 1..C in the order of ``names``."""
    return [{"id": i + 1, "name": n, "supercategory": "none"} for i, n in enumerate(names)]


def list_images(img_dir: Path, flag: str = "--img-dir") -> list[Path]:
    """Image files under ``img_dir`` (recursively, sorted); a DatasetError naming ``flag`` when it is no folder."""
    require_dir(img_dir, flag, "image folder")
    return sorted(p for p in img_dir.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
