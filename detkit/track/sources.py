"""Frame sources for tracking: a video file (OpenCV) or a folder of frame images (sorted by name)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = ["frame_files", "open_frames"]

DEFAULT_FPS = 25.0  # of a folder of frames (a video says its own)


def frame_files(folder: str | os.PathLike) -> list[Path]:
    """The image files directly in ``folder``, sorted by name (000001.png, 000002.png, ...); a MOT sequence
    folder (``img1/`` inside, as ``make_shapes --task track`` and MOT Challenge write it) gives ``img1``'s.

    Raises:
        FileNotFoundError: the folder holds no image file.
    """
    from detkit.inference.inputs import IMAGE_EXTS

    folder = Path(folder)
    if (folder / "img1").is_dir() and not any(p.suffix.lower() in IMAGE_EXTS for p in folder.iterdir()):
        folder = folder / "img1"  # a MOT sequence: its frames
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise FileNotFoundError(
            f"folder {folder} holds no frame image (looked for {', '.join(sorted(IMAGE_EXTS))}, not recursively)"
        )
    return files


def _read_folder(files: list[Path]) -> Iterator[np.ndarray]:
    from detkit.data.image_io import read_image

    for path in files:
        yield read_image(path)


def open_frames(source: str | os.PathLike) -> tuple[dict, Iterator[np.ndarray]]:
    """Open a video file or a folder of frames: ``(info, frames)``; ``info`` has ``fps``, ``width``, ``height``,
    ``frame_count``; ``frames`` yields RGB uint8 [H,W,3] arrays.

    Raises:
        ImageReadError: the video cannot be opened or decoded, or the folder's first frame cannot be read.
        FileNotFoundError: the path does not exist, or the folder holds no image.
    """
    from detkit.data.image_io import read_image
    from detkit.inference.inputs import read_video

    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"video or frame folder not found: {path} (check the path)")
    if path.is_dir():
        files = frame_files(path)
        first = read_image(files[0])
        info = {"fps": DEFAULT_FPS, "height": first.shape[0], "width": first.shape[1], "frame_count": len(files)}
        return info, _read_folder(files)
    info, chunks = read_video(path)
    return info, (frame for chunk in chunks for frame in chunk)
