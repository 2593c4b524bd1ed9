"""Image reading with OpenCV (RGB uint8, EXIF orientation applied) and safe image paths."""

from __future__ import annotations

import os
from pathlib import PureWindowsPath

import cv2
import numpy as np

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageReadError",
    "UnsafePathError",
    "decode_image",
    "low_bit_depth_note",
    "read_image",
    "safe_join",
    "to_uint8",
]

# the image file endings every dataset, converter and input lister of detkit reads (lower case)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# IMREAD_COLOR makes OpenCV apply the EXIF orientation, expand grayscale/palette images to three
# channels and drop an alpha channel; IMREAD_ANYDEPTH keeps 16-bit data so that we scale it ourselves
# (plain IMREAD_COLOR would truncate it). IMREAD_UNCHANGED would skip the EXIF orientation.
_READ_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH


class ImageReadError(OSError, ValueError):
    """An image file that is missing, unreadable or cannot be decoded; the message names the file."""


class UnsafePathError(ValueError):
    """An image ``file_name`` that is absolute or points outside the image folder."""


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Convert a decoded image of any depth to uint8: 16-bit keeps its high byte, float scales by its max."""
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return (img >> 8).astype(np.uint8)
    if img.dtype == np.int8:
        return (img.astype(np.int16) + 128).astype(np.uint8)
    img = img.astype(np.float64)
    top = float(np.nanmax(img)) if img.size else 0.0
    scale = 255.0 if 0.0 < top <= 1.0 else (255.0 / top if top > 255.0 else 1.0)
    return np.clip(np.nan_to_num(img) * scale, 0, 255).round().astype(np.uint8)


def low_bit_depth_note(path: str | os.PathLike, image: np.ndarray | None = None) -> str | None:
    """A sentence when ``path`` is a 16-bit image whose values stay under 4096 (12-bit or less data, as
    microscopes and many cameras write): reading keeps the high byte, so it trains nearly black; else None.
    ``image``: the file as :func:`decode_image` gave it (decoded here when not given)."""
    if image is None:
        try:
            image = decode_image(path)
        except ImageReadError:
            return None
    if image.dtype != np.uint16:
        return None
    top = int(image.max())
    if top >= 4096:
        return None
    return (
        f"{path} is a 16-bit image whose values stay under {top + 1} ({max(top, 1).bit_length()}-bit data): detkit "
        f"keeps the high byte of 16-bit images, so it reads as nearly black (max {top >> 8} of 255); scale the "
        "data to the 16-bit range, or convert the files to 8-bit, before training"
    )


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB ``np.uint8 [H, W, 3]``.

    The EXIF orientation is applied (the returned size is the displayed size), grayscale becomes three
    equal channels, an alpha channel is dropped, 16-bit images keep their high byte (``>> 8``).
    ``np.fromfile`` + ``cv2.imdecode`` make non-ASCII paths work on every platform.

    Raises:
        ImageReadError: the file is missing, unreadable or not a decodable image (names the file).
    """
    img = to_uint8(decode_image(path))
    return np.ascontiguousarray(img[:, :, 2::-1])  # BGR -> RGB (drops a 4th channel if any)


def decode_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as OpenCV decodes it for :func:`read_image`: BGR ``[H, W, 3]`` of the file's depth (uint8,
    uint16, ...), the EXIF orientation applied. Raises :class:`ImageReadError` as read_image does."""
    path = os.fspath(path)
    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise ImageReadError(f"cannot read image file {path}: {e.strerror or e}") from e
    if buf.size == 0:
        raise ImageReadError(f"cannot decode image file {path}: the file is empty")
    try:
        img = cv2.imdecode(buf, _READ_FLAGS)
    except cv2.error as e:
        raise ImageReadError(f"cannot decode image file {path}: {e}") from e
    if img is None or img.size == 0:
        raise ImageReadError(
            f"cannot decode image file {path}: corrupt or not an image format "
            f"OpenCV can read; replace the file, or leave it out (of the annotations, or of the inputs)"
        )
    if img.ndim == 2:  # defensive: IMREAD_COLOR already gives 3 channels
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return img


def safe_join(img_dir: str | os.PathLike, file_name: str) -> str:
    """Join ``img_dir`` and an annotation's ``file_name``, refusing paths that leave ``img_dir``.

    A backslash is a separator on every platform (``a\\b\\1.png`` is ``a/b/1.png``: json files made on
    Windows), and the escape check is made on the path so read. Symlinks are resolved before the check, so
    a link inside ``img_dir`` that points elsewhere is refused as well (link ``img_dir`` itself instead).

    Raises:
        UnsafePathError: ``file_name`` is empty, absolute, or escapes ``img_dir`` (via ``..`` or a link).
    """
    if not isinstance(file_name, str) or not file_name.strip():
        raise UnsafePathError(f"image file_name {file_name!r} is empty or not a string; use a path relative to img_dir")
    hint = "use a path relative to img_dir"
    if os.path.isabs(file_name) or PureWindowsPath(file_name).drive or file_name[0] in "/\\":
        raise UnsafePathError(f"image file_name {file_name!r} is an absolute path; {hint} ({os.fspath(img_dir)})")
    root = os.path.realpath(img_dir)
    target = os.path.realpath(os.path.join(root, file_name.replace("\\", "/")))
    if target == root or os.path.commonpath([root, target]) != root:
        raise UnsafePathError(
            f"image file_name {file_name!r} points outside img_dir {os.fspath(img_dir)} (resolves to {target}); {hint}"
        )
    return target
