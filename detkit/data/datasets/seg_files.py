"""The files of a semantic segmentation folder: class names, label-map names and reading, split lists, the EXIF
turn that explains a size mismatch. Used by :class:`~detkit.data.datasets.seg_folder.SegFolderDataset` and
``detkit check`` (:mod:`detkit.data.seg_folder_check`)."""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Sequence
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


def load_class_names(classes: str | os.PathLike | Sequence[str]) -> list[str]:
    """``classes`` as a list of names: a list as is, or a text file with one name per line (blank lines skipped).

    Names are Unicode NFC-normalised, so that a name typed on one system matches the same name written
    (decomposed, NFD) by another, e.g. macOS' folder names."""
    if isinstance(classes, (str, os.PathLike)):
        path = os.fspath(classes)
        if not os.path.isfile(path):
            raise DatasetError(_missing_classes(path))
        with open(path, encoding="utf-8-sig") as f:  # -sig: a byte-order mark (Windows Notepad) is no name
            names = [nfc(line.strip()) for line in f if line.strip()]
        if not names:
            raise DatasetError(f"classes file {path} is empty; write one class name per line")
        return names
    names = [nfc(str(n)) for n in classes]
    if not names:
        raise DatasetError("classes is an empty list; give the class names (label value = index)")
    return names


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
    """``mask_suffix`` as given when it ends with a file ending (``.png``, ``_mask.png``), else a DatasetError."""
    if not isinstance(mask_suffix, str) or not _SUFFIX.fullmatch(mask_suffix):
        raise DatasetError(
            f"mask_suffix {mask_suffix!r} is not a label-map file ending: give '.png' (a.jpg <-> a.png) or the text "
            "after the image's stem, ending in the file ending: '_mask.png' (a.jpg <-> a_mask.png), "
            "'_gtFine_labelTrainIds.png'; no folder"
        )
    return mask_suffix


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
    they hold colours, not class indices.
    """
    path = os.fspath(path)
    try:
        with Image.open(path) as im:
            mode = im.mode
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
