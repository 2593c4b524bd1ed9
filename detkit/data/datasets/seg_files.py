"""The files of a semantic segmentation folder: class names, label-map names and reading, split lists, the EXIF
turn that explains a size mismatch. Used by :class:`~detkit.data.datasets.seg_folder.SegFolderDataset` and
``detkit check`` (:mod:`detkit.data.seg_folder_check`)."""

from __future__ import annotations

import os
import re
import unicodedata
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from detkit.data.image_io import ImageReadError
from detkit.data.validate import DatasetError

__all__ = [
    "IGNORE",
    "binary_mask_hint",
    "check_mask_suffix",
    "exif_turn",
    "image_size_as_read",
    "index_lines_warning",
    "label_map_path",
    "load_class_names",
    "nfc",
    "read_label_map",
    "read_split_file",
    "size_mismatch",
]

IGNORE = 255
_EXTENSION = re.compile(r"\.[A-Za-z0-9]+")  # a bare file ending: ".png"
_SUFFIX = re.compile(r"[^/\\]*\.[A-Za-z0-9]+")  # text the label map's name ends with, with its ending: "_mask.png"


def load_class_names(classes: str | os.PathLike | Sequence[str], by_line_index: bool = True) -> list[str]:
    """``classes`` as a list of names: a list as is, or a text file with one name per line (blank lines at its
    end skipped). A name given twice is a DatasetError naming the file and line (or the entry); lines that look
    like ``<index> <name>`` are a warning (see :func:`index_lines_warning`).

    ``by_line_index``: the label value of a class is its line's index (the file's first line is 0), as in
    SegFolderDataset's and a YOLO folder's classes.txt, so a blank line before or between the names would shift
    every class below it and is a DatasetError too. False where the data name their classes (VOC's XML files,
    a classifier's class folders): blank lines are skipped.

    Names are Unicode NFC-normalised, so that a name typed on one system matches the same name written
    (decomposed, NFD) by another, e.g. macOS' folder names."""
    if isinstance(classes, (str, os.PathLike)):
        path = os.fspath(classes)
        names = _names_in_file(path, by_line_index)
        warning = index_lines_warning(path, names)
        if warning:
            warnings.warn(warning, stacklevel=2)
        return names
    names = [nfc(str(n)) for n in classes]
    if not names:
        raise DatasetError("classes is an empty list; give the class names (label value = index)")
    _refuse_repeats(names, lambda k: f"classes entry {k}", lambda k: f"entry {k}")
    return names


def _names_in_file(path: str, by_line_index: bool = True) -> list[str]:
    """The names of a classes file, one per line; a repeat is refused, and so is a blank line before or between
    them when ``by_line_index`` (else blank lines are skipped)."""
    if not os.path.isfile(path):
        raise DatasetError(_missing_classes(path))
    with open(path, encoding="utf-8-sig") as f:  # -sig: a byte-order mark (Windows Notepad) is no name
        lines = [nfc(line.strip()) for line in f]
    numbered = list(enumerate(lines))  # (line index, name): a repeat is named by its line in the file
    if by_line_index:
        while numbered and not numbered[-1][1]:  # blank lines at the end (a last newline, an editor's) shift nothing
            numbered.pop()
        _refuse_blank_line(path, [n for _, n in numbered])
    else:
        numbered = [(k, n) for k, n in numbered if n]
    if not numbered:
        raise DatasetError(f"classes file {path} is empty; write one class name per line")
    names = [n for _, n in numbered]
    _refuse_repeats(
        names, lambda k: f"classes file {path} line {numbered[k][0] + 1}", lambda k: f"line {numbered[k][0] + 1}"
    )
    return names


def _refuse_blank_line(path: str, lines: list[str]) -> None:
    """A DatasetError for the first blank line of ``lines`` (a classes file's, blank lines at its end removed)."""
    if "" not in lines:
        return
    blank = lines.index("")
    after = next(n for n in lines[blank:] if n)  # (blank lines at the end are gone: a name follows)
    where = f"between {lines[blank - 1]!r} and {after!r}" if blank else "before the first name"
    raise DatasetError(
        f"classes file {path} line {blank + 1} is blank, {where}: a class's label value is the index of its "
        "line (the first line is 0), so a blank line would shift every class below it; delete the blank "
        "line(s), or write there the name of the class whose value it is"
    )


def _refuse_repeats(names: list[str], where: Callable[[int], str], first: Callable[[int], str]) -> None:
    """A DatasetError for the first name of ``names`` given twice (``where``/``first`` name its place and the
    first one's: a file's line, a list's entry)."""
    seen: dict[str, int] = {}
    for k, name in enumerate(names):
        if name in seen:
            raise DatasetError(
                f"{where(k)} repeats the class name {name!r} ({first(seen[name])}): each class has one label value "
                "(its index), so name it once; remove the repeat or rename one of them"
            )
        seen[name] = k


_INDEX_LINE = re.compile(r"(\d+)\s*[\s:,=]\s*\S.*")  # "0 background", "1: cat", "2,dog"


def _numbered_lines(names: Sequence[str]) -> list[tuple[int, str]]:
    """(index, name) of the names that start with a number counting up by one from 0 or 1 (``0 background``,
    ``1 cat``, ...), when they are most of ``names`` (two at least); else [] (``1 euro coin``, ``2 wheeler``
    among other names are names)."""
    found = [(k, n, int(m.group(1))) for k, n in enumerate(names) if (m := _INDEX_LINE.fullmatch(n))]
    numbers = [v for _, _, v in found]
    counts_up = bool(numbers) and numbers[0] in (0, 1) and numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    if len(found) < 2 or 2 * len(found) <= len(names) or not counts_up:
        return []
    return [(k, n) for k, n, _ in found]


def index_lines_warning(path: str, names: Sequence[str]) -> str | None:
    """The warning for the names of classes file ``path`` when they look numbered, ``<index> <name>`` (``0
    background``, ``1 cat``: see :func:`_numbered_lines`), or None: the whole line is the name, and the label
    value is the line's index, not the number written."""
    found = _numbered_lines(names)
    if not found:
        return None
    k, name = found[0]
    return (
        f"classes file {path}: {len(found)} line(s) look like '<index> <name>' (line {k + 1}: {name!r}): the whole "
        f"line is taken as the class name, and a class's label value is the index of its line (the first line "
        f"is 0), not a number written in it; write the names alone, one per line, in label-value order"
    )


def nfc(name: str) -> str:
    """``name`` in Unicode normal form C (composed: 'é' as one character, as most keyboards type it)."""
    return unicodedata.normalize("NFC", name)


def _missing_classes(path: str) -> str:
    """Why ``classes`` (a path that is no file) cannot be read: a folder or a file not found, or a folder."""
    from detkit.data.coco_file import where_read

    if os.path.isdir(path):
        return f"classes {path} is a folder; give a text file with one class name per line or a list of names"
    if not os.path.splitext(path.rstrip("/\\"))[1]:  # no file ending: the value names a folder
        return (
            f"classes folder {path} not found{where_read(path)}; give the folder whose sub-folders name the "
            "classes (the training split's img_dir: data.val.classes=<data.train.img_dir>), a text file with one "
            "class name per line, or a list of names"
        )
    return (
        f"classes file {path} not found{where_read(path)}; give a text file with one class name per line "
        f"(label value = line index) or a list of names"
    )


def check_mask_suffix(mask_suffix: Any) -> str:
    """``mask_suffix`` as given when it ends with a file ending (``.png``, ``_mask.png``) of a format that keeps
    class indices exactly, else a DatasetError (a JPEG or WebP ending: :data:`LOSSY_ENDINGS`)."""
    if not isinstance(mask_suffix, str) or not _SUFFIX.fullmatch(mask_suffix):
        raise DatasetError(
            f"mask_suffix {mask_suffix!r} is not a label-map file ending: give '.png' (a.jpg <-> a.png) or the text "
            "after the image's stem, ending in the file ending: '_mask.png' (a.jpg <-> a_mask.png), "
            "'_gtFine_labelTrainIds.png'; no folder"
        )
    stem, ending = mask_suffix.rsplit(".", 1)
    fmt = LOSSY_ENDINGS.get(f".{ending.lower()}")
    if fmt is not None:
        raise DatasetError(
            f"mask_suffix {mask_suffix!r} names {fmt} label maps, which do not keep class indices: {_LOSSY_WHY[fmt]}; "
            f"{SAVE_AS_PNG}; and set mask_suffix: '{stem}.png'"
        )
    return mask_suffix


# File endings of formats that cannot hold a label map: JPEG is lossy; WebP has no one-channel mode (PIL reads it
# as RGB) and is lossy unless saved lossless. (TIFF can hold JPEG data too: read_label_map refuses such a file.)
LOSSY_ENDINGS = {".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG", ".webp": "WebP"}
_LOSSY_WHY = {
    "JPEG": "JPEG compression is lossy and turns the pixels along class edges into other values, i.e. other classes",
    "WebP": "WebP holds colours (it has no one-channel mode) and is lossy unless saved lossless",
}
SAVE_AS_PNG = (
    "save the label maps as PNG, one class index per pixel (PIL.Image.fromarray(labels).save('a.png'), "
    "cv2.imwrite('a.png', labels)), from the original labels: converting a JPEG keeps its noise"
)


def _lossy_format(im: Image.Image) -> str | None:
    """``'JPEG'`` / ``'WebP'`` when the open image ``im`` is stored lossily (a JPEG, a WebP, a JPEG-compressed
    TIFF), else None."""
    if im.format in ("JPEG", "MPO"):
        return "JPEG"
    if im.format == "WEBP":
        return "WebP"
    if im.format == "TIFF" and str(im.info.get("compression", "")).lower() in ("jpeg", "tiff_jpeg"):
        return "JPEG"
    return None


def label_map_path(rel: Path, mask_suffix: str) -> Path:
    """The label map's path (relative, like ``rel``, an image's) for ``mask_suffix``: ``.png`` replaces the image's
    file ending (``a.jpg`` -> ``a.png``); any other suffix follows the image's stem (``_mask.png``: ``a_mask.png``)."""
    if _EXTENSION.fullmatch(mask_suffix):
        return rel.with_suffix(mask_suffix)
    return rel.with_name(rel.stem + mask_suffix)


def binary_mask_hint(counts: np.ndarray, class_names: Sequence[str], split: str) -> str | None:
    """The hint when a class has no pixel in ``split``'s label maps while 255 (ignore) covers some: 0/255 masks.

    Args:
        counts: pixels per label value (``np.bincount`` of the maps, at least 256 long).
        class_names: the dataset's classes. split: names the maps in the message, e.g. ``data.train``.
    Returns: the one-line warning, or None when every class has a pixel or no pixel is 255.
    """
    counts = np.asarray(counts)
    missing = [k for k in range(len(class_names)) if counts[k] == 0]
    if not missing or counts[IGNORE] == 0:
        return None
    names = ", ".join(f"'{class_names[k]}'" for k in missing[:4]) + (", ..." if len(missing) > 4 else "")
    share = counts[IGNORE] / max(int(counts.sum()), 1)
    return (
        f"class{'es' if len(missing) > 1 else ''} {names} {'have' if len(missing) > 1 else 'has'} no pixel in "
        f"{split}'s label maps but 255 (ignore) covers {share:.1%} of them: 0/255 binary masks? map 255 to the "
        f"class, e.g. label_map: {{255: {missing[0]}}} on data.train and data.val (docs/segmentation.md)"
    )


def read_label_map(path: str | os.PathLike) -> np.ndarray:
    """Read a label map: one class index per pixel (``L``, palette ``P`` or 16-bit ``I;16`` PNG). uint8/int32 [H,W].

    Palette PNGs (Pascal VOC style) give their palette *indices*, not colours. RGB maps are refused:
    they hold colours, not class indices; so are JPEG (whatever its file ending) and WebP files: lossy.
    """
    path = os.fspath(path)
    try:
        with Image.open(path) as im:
            mode, fmt = im.mode, _lossy_format(im)
            if fmt is not None:
                raise DatasetError(f"label map {path} is a {fmt} file: {_LOSSY_WHY[fmt]}; {SAVE_AS_PNG}")
            if mode in ("RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV"):
                raise DatasetError(
                    f"label map {path} is a colour ({mode}) image; save one class index per pixel "
                    "as a single-channel (L), palette (P) or 16-bit PNG"
                )
            arr = np.asarray(im)
    except (OSError, SyntaxError) as e:
        raise ImageReadError(f"cannot read label map {path}: {e}") from e
    if arr.ndim == 3:  # e.g. LA
        arr = arr[..., 0]
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    return arr if arr.dtype == np.uint8 else arr.astype(np.int32)


EXIF_ORIENTATION = 0x0112  # the EXIF tag; values 5..8 turn the image by 90 or 270 degrees
EXIF_TURNS = {5: "mirrored and rotated 270", 6: "rotated 90", 7: "mirrored and rotated 90", 8: "rotated 270"}


def exif_turn(image: str | os.PathLike | Image.Image) -> int | None:
    """The image's EXIF orientation when it turns the image by 90 or 270 degrees (5..8), else None; ``image`` a
    path or an open PIL image."""
    try:
        if isinstance(image, Image.Image):
            value = image.getexif().get(EXIF_ORIENTATION)
        else:
            with Image.open(image) as im:
                value = im.getexif().get(EXIF_ORIENTATION)
    except (OSError, SyntaxError, ValueError):
        return None
    return value if value in EXIF_TURNS else None


def image_size_as_read(path: str | os.PathLike) -> tuple[int, int]:
    """(h, w) of image ``path`` as training reads it, from its header only: turned by its EXIF orientation (5..8)
    where reading applies it (JPEG, PNG, WebP: OpenCV's formats that carry one). ImageReadError when unreadable."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            turned = im.format in ("JPEG", "MPO", "PNG", "WEBP") and exif_turn(im) is not None  # (header open)
    except (OSError, SyntaxError) as e:
        raise ImageReadError(f"cannot read image {os.fspath(path)}: {e}") from e
    return (w, h) if turned else (h, w)


def size_mismatch(mask: str, image: str, mask_hw: tuple[int, int], image_hw: tuple[int, int]) -> str:
    """Why label map ``mask`` does not fit ``image`` (sizes (h, w), the image's as read), naming an EXIF turn
    that explains it: images are read turned upright, a label map drawn on the stored pixels is not."""
    (mh, mw), (ih, iw) = mask_hw, image_hw
    text = f"label map {mask} is {mw}x{mh} but image {image} is {iw}x{ih}"
    turn = exif_turn(image) if (mh, mw) == (iw, ih) else None
    if turn is None:
        return f"{text}; they must match"
    return (
        f"{text} as read: its EXIF orientation {turn} (shown {EXIF_TURNS[turn]} degrees clockwise) is applied "
        f"when images are read (as OpenCV and image viewers do), while the label map is in the stored, unturned "
        f"{mw}x{mh} frame; strip the tag so that the image is read as stored (exiftool -Orientation= "
        f"-overwrite_original {image}), or apply it to both: re-save the image upright without the tag "
        "(PIL.ImageOps.exif_transpose) and turn the label map the same way"
    )


def read_split_file(path: str) -> list[tuple[int, str]]:
    """(line number, stem) of each line of a split file: one image stem per line (Pascal VOC's ImageSets)."""
    if not os.path.isfile(path):
        from detkit.data.coco_file import where_read

        raise DatasetError(
            f"split_file {path} not found{where_read(path)}; give a text file with one image stem per line "
            "(e.g. ImageSets/Segmentation/train.txt)"
        )
    with open(path, encoding="utf-8-sig") as f:
        lines = [(n, line.strip()) for n, line in enumerate(f, 1) if line.strip()]
    if not lines:
        raise DatasetError(f"split_file {path} lists no image stem; write one stem per line")
    return lines
