"""Frame sources for tracking: a video file (OpenCV) or a folder of frame images (in natural name order).

A folder's frames are read in natural order (``frame_2`` before ``frame_10``: numbers compared by value); an
unreadable frame comes as ``None`` (one warning naming it), so the frame numbering stays; the frame rate of a
folder is the ``frameRate`` of a MOT ``seqinfo.ini`` beside it (in the folder or its parent), else 25.
"""

from __future__ import annotations

import configparser
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_FPS", "folder_fps", "frame_files", "live_source", "natural_key", "open_frames"]

DEFAULT_FPS = 25.0  # of a folder of frames without a seqinfo.ini (a video says its own)
LIVE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")  # rtsp://, http://, udp://, ...


def live_source(source: str | os.PathLike) -> bool:
    """True for a webcam index (``0``) or a stream URL (``rtsp://...``) that is not an existing path."""
    text = os.fspath(source)
    return not Path(text).exists() and (text.strip().isdigit() or bool(LIVE.match(text)))


def natural_key(path: Path) -> tuple:
    """Sort key of a file name with its runs of digits compared by value (``f_2`` < ``f_10``), then as text."""
    parts = re.split(r"(\d+)", path.name)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), path.name


def frame_files(folder: str | os.PathLike) -> list[Path]:
    """The image files directly in ``folder``, in natural name order (:func:`natural_key`: ``frame_1, frame_2,
    ..., frame_10``); a MOT sequence folder (``img1/`` inside, as ``make_shapes --task track`` and MOT Challenge
    write it) gives ``img1``'s.

    Raises:
        FileNotFoundError: the folder holds no image file.
    """
    from detkit.inference.inputs import IMAGE_EXTS

    folder = Path(folder)
    if (folder / "img1").is_dir() and not any(p.suffix.lower() in IMAGE_EXTS for p in folder.iterdir()):
        folder = folder / "img1"  # a MOT sequence: its frames
    files = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS), key=natural_key)
    if not files:
        raise FileNotFoundError(
            f"folder {folder} holds no frame image (looked for {', '.join(sorted(IMAGE_EXTS))}, not recursively)"
        )
    return files


def folder_fps(frames_dir: str | os.PathLike) -> float:
    """The frame rate of a folder of frames: ``frameRate`` of the MOT ``seqinfo.ini`` in the folder or in its
    parent (MOT's ``seq/img1`` + ``seq/seqinfo.ini``), else :data:`DEFAULT_FPS`. A rate that is not a positive
    number is warned about and not used."""
    folder = Path(frames_dir)
    for ini in (folder / "seqinfo.ini", folder.parent / "seqinfo.ini"):
        if not ini.is_file():
            continue
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(ini, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            continue
        section = parser["Sequence"] if parser.has_section("Sequence") else None
        if section is None or "frameRate" not in section:
            continue
        try:
            fps = float(section["frameRate"])
        except ValueError:
            fps = 0.0
        if fps > 0:
            return fps
        message = f"{ini}: frameRate {section['frameRate']!r} is not a positive number; using {DEFAULT_FPS:g} fps"
        warnings.warn(message, stacklevel=2)
        break
    return DEFAULT_FPS


def read_frame(path: Path) -> np.ndarray | None:
    """One frame as RGB uint8 [H,W,3], or None (with a warning naming the file) when it cannot be read."""
    from detkit.data.image_io import ImageReadError, read_image

    try:
        return read_image(path)
    except ImageReadError as e:
        warnings.warn(f"unreadable frame: {e} (tracked as a frame with no detections)", stacklevel=2)
        return None


def _read_folder(files: list[Path], first: tuple[int, np.ndarray]) -> Iterator[np.ndarray | None]:
    index, image = first  # already read: the first readable frame
    for i, path in enumerate(files):
        yield image if i == index else read_frame(path) if i > index else None


def _open_folder(folder: Path, fps: float | None) -> tuple[dict, Iterator[np.ndarray | None]]:
    """``open_frames`` of a folder: its first readable frame gives the size; the unreadable ones before it are
    warned about here, the later ones as they come."""
    from detkit.data.image_io import ImageReadError

    files = frame_files(folder)
    readable = ((i, image) for i, image in enumerate(map(read_frame, files)) if image is not None)
    index, image = next(readable, (None, None))
    if image is None:
        raise ImageReadError(f"no frame of {folder} can be read ({len(files)} image files, each unreadable)")
    fps = folder_fps(files[0].parent) if fps is None else float(fps)
    info = {"fps": fps, "height": image.shape[0], "width": image.shape[1], "frame_count": len(files)}
    return info, _read_folder(files, (index, image))


def open_frames(source: str | os.PathLike, fps: float | None = None) -> tuple[dict, Iterator[np.ndarray | None]]:
    """Open a video file or a folder of frames: ``(info, frames)``; ``info`` has ``fps``, ``width``, ``height``
    (the first frame's), ``frame_count``; ``frames`` yields RGB uint8 [H,W,3] arrays, and ``None`` for a frame of
    a folder that cannot be read (warned about; a frame with no detections to the tracker).

    ``fps``: the frame rate of a folder of frames (default :func:`folder_fps`); a video says its own.

    Raises:
        ImageReadError: the video cannot be opened or decoded, or no frame of the folder can be read.
        FileNotFoundError: the path does not exist (a webcam index or a stream URL: see the message), or the
            folder holds no image.
    """
    from detkit.inference.inputs import read_video

    path = Path(source)
    if live_source(source):
        raise FileNotFoundError(
            f"{os.fspath(source)} is a webcam or a stream: detkit reads video files and frame folders; record it "
            "to a file first, or pass frames yourself (frames from cv2.VideoCapture; docs/tracking.md)"
        )
    if not path.exists():
        raise FileNotFoundError(f"video or frame folder not found: {path} (check the path)")
    if path.is_dir():
        return _open_folder(path, fps)
    info, chunks = read_video(path)
    return info, (frame for chunk in chunks for frame in chunk)
