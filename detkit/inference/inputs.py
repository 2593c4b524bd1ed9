"""Inputs of ``tools/infer.py`` (and explain, export, track): files, folders and glob patterns expanded to image
and video paths, and videos read frame by frame with OpenCV.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from detkit.data.image_io import IMAGE_SUFFIXES

__all__ = ["IMAGE_EXTS", "VIDEO_EXTS", "collect_inputs", "is_video", "numpy_to_uint8", "read_video"]

IMAGE_EXTS = set(IMAGE_SUFFIXES)
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}


def collect_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Expand files, folders (recursive: images and videos) and glob patterns into a list of paths.

    Raises:
        FileNotFoundError: an input is neither a file, a folder nor a pattern matching something, or a
            folder or pattern holds no image or video.
    """
    exts = IMAGE_EXTS | VIDEO_EXTS
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.suffix.lower() in exts and q.is_file())
            if not found:
                raise FileNotFoundError(
                    f"folder {item} holds no image or video (looked for {', '.join(sorted(exts))}, recursively)"
                )
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            matches = [m for m in sorted(Path(m) for m in glob.glob(os.fspath(item), recursive=True)) if m.is_file()]
            if not matches:
                raise FileNotFoundError(f"no such file, folder or pattern: {item} (check the path)")
            out.extend(matches)
    return out


def numpy_to_uint8(arr: np.ndarray, who: str = "predict") -> np.ndarray:
    """A numpy image [H,W(,C)] of another dtype as uint8, by one rule (an image file's 16-bit rule included).

    uint16: the high byte (``>> 8``, as 16-bit files are read). Float: values in 0..1 are scaled by 255, values
    in 0..255 (any above 1) rounded; other integers in 0..255 taken as they are. Anything else (negative values,
    NaN, floats above 255, wider integers above 255, bool) is a ValueError saying the conversion to do.
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return (arr >> 8).astype(np.uint8)
    fix = "; convert it first, e.g. np.clip(image, 0, 255).astype(np.uint8)"
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
        raise ValueError(f"{who}: a numpy image must be uint8, uint16 or float, got {arr.dtype}{fix}")
    if arr.size == 0:
        return arr.astype(np.uint8)
    low, high = float(np.min(arr)), float(np.max(arr))
    if np.isnan(low) or np.isnan(high):
        raise ValueError(
            f"{who}: a {arr.dtype} numpy image holds NaN; replace it (np.nan_to_num) and give 0..255 or 0..1"
        )
    if low < 0 or high > 255:
        raise ValueError(
            f"{who}: a {arr.dtype} numpy image must hold values in 0..1 or 0..255, got {low:g}..{high:g} (a normalised "
            f"image? give it before normalisation){fix}"
        )
    if arr.dtype.kind == "f" and high <= 1.0:
        return np.round(arr * 255.0).astype(np.uint8)
    return np.round(arr).astype(np.uint8) if arr.dtype.kind == "f" else arr.astype(np.uint8)


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTS


def read_video(path: str | os.PathLike, chunk: int = 1) -> tuple[dict, Iterator[list[np.ndarray]]]:
    """Open a video with OpenCV: ``(info, frames)`` with ``info`` = fps, width, height, frame_count and
    ``frames`` yielding lists of up to ``chunk`` RGB uint8 frames.

    Raises:
        ImageReadError: OpenCV cannot open the file or decode its first frame (names the file).
    """
    from detkit.data.image_io import ImageReadError

    cap = cv2.VideoCapture(os.fspath(path))
    ok, first = cap.read() if cap.isOpened() else (False, None)
    if not ok or first is None:
        cap.release()
        raise ImageReadError(f"cannot read video {path}: OpenCV could not open it or decode a frame")
    info = {
        "fps": cap.get(cv2.CAP_PROP_FPS) or 25.0,
        "height": first.shape[0],
        "width": first.shape[1],
        "frame_count": max(1, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))),
    }

    def frames() -> Iterator[list[np.ndarray]]:
        buf = [cv2.cvtColor(first, cv2.COLOR_BGR2RGB)]
        try:
            while True:
                ok, frame = cap.read()
                if ok:
                    buf.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                if buf and (len(buf) == chunk or not ok):
                    yield buf
                    buf = []
                if not ok:
                    return
        finally:
            cap.release()

    return info, frames()
