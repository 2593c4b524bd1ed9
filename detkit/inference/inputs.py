"""Inputs of ``tools/infer.py`` (and explain, export, track): files, folders and glob patterns expanded to image
and video paths, and videos read frame by frame with OpenCV; and the inputs of ``detkit.predict`` (folders,
tensors, numpy images of other dtypes) as a list of images.
"""

from __future__ import annotations

import glob
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from detkit.data.image_io import IMAGE_SUFFIXES

__all__ = [
    "IMAGE_EXTS",
    "VIDEO_EXTS",
    "LazyImages",
    "check_numpy_values",
    "collect_inputs",
    "folder_images",
    "is_video",
    "numpy_to_uint8",
    "outside_stacklevel",
    "predict_items",
    "read_video",
    "tensor_images",
    "warn_low_uint16",
]

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
    NaN, floats above 255, wider integers above 255, bool) is a ValueError saying the conversion to do
    (:func:`check_numpy_values`).
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return (arr >> 8).astype(np.uint8)
    high = _checked_high(arr, who)
    if high is None:
        return arr.astype(np.uint8)
    if arr.dtype.kind == "f" and high <= 1.0:
        return np.round(arr * 255.0).astype(np.uint8)
    return np.round(arr).astype(np.uint8) if arr.dtype.kind == "f" else arr.astype(np.uint8)


def check_numpy_values(arr: np.ndarray, who: str = "predict") -> None:
    """Raise the ValueError :func:`numpy_to_uint8` raises for ``arr`` (its dtype or values), converting nothing:
    ``predict`` checks every input before it decodes or converts the first."""
    if arr.dtype not in (np.uint8, np.uint16):
        _checked_high(arr, who)


def _checked_high(arr: np.ndarray, who: str) -> float | None:
    """The largest value of a numpy image that is neither uint8 nor uint16 (None when it is empty), after checking
    that :func:`numpy_to_uint8` converts it: int or float, no NaN, values in 0..255."""
    fix = "; convert it first, e.g. np.clip(image, 0, 255).astype(np.uint8)"
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
        raise ValueError(f"{who}: a numpy image must be uint8, uint16 or float, got {arr.dtype}{fix}")
    if arr.size == 0:
        return None
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
    return high


# ---- the inputs of ``detkit.predict``: folders, videos (refused), tensors, 8-bit data in uint16 arrays ----

TENSOR_FORMS = (
    "a float tensor [3,H,W] in 0..1 (torchvision's ToTensor, RGB), a uint8 tensor [H,W,3] (RGB), "
    "or a float batch [B,3,H,W] in 0..1 (read as a list of images)"
)


def video_message(path: str | os.PathLike, who: str = "predict") -> str:
    return (
        f"{who}: {path} is a video; predict takes images. For a video use detkit.track(model, path) or "
        f"`detkit infer CONFIG CKPT {Path(path).name}`, or read its frames with cv2.VideoCapture and pass them "
        "(channel_order='bgr')"
    )


def folder_images(folder: str | os.PathLike, who: str = "predict") -> list[Path]:
    """The images of a folder as ``predict`` reads it: its files with an image suffix (``IMAGE_SUFFIXES``, any
    case), sorted by name; hidden files and subfolders are skipped.

    Raises:
        ValueError: the folder holds no such image.
    """
    found = sorted(
        q
        for q in Path(folder).iterdir()
        if q.suffix.lower() in IMAGE_EXTS and not q.name.startswith(".") and q.is_file()
    )
    if not found:
        raise ValueError(
            f"{who}: folder {folder} holds no image (looked for {' '.join(IMAGE_SUFFIXES)}; subfolders are not read)"
        )
    return found


def _tensor_hint(t: torch.Tensor) -> str:
    if t.dtype == torch.uint8 and t.ndim == 3 and t.shape[0] in (1, 3):
        return "; a uint8 [3,H,W] tensor (torchvision.io.read_image): pass t.permute(1, 2, 0)"
    if t.is_floating_point() and t.ndim == 3 and t.shape[-1] == 3:
        return "; a float [H,W,3] tensor: pass t.permute(2, 0, 1)"
    if t.ndim == 4:
        return "; a [B,...] batch is taken alone, as a float [B,3,H,W] in 0..1, not inside a list"
    return ""


def _float_chw(t: torch.Tensor, who: str) -> np.ndarray:
    """A float [3,H,W] tensor in 0..1 as an RGB uint8 [H,W,3] array (the rule of float numpy images)."""
    if t.shape[1] == 0 or t.shape[2] == 0:
        raise ValueError(f"{who}: a tensor image has no pixels (shape {list(t.shape)})")
    x = (t.float() if t.dtype in (torch.float16, torch.bfloat16) else t).permute(1, 2, 0).numpy()
    low, high = float(np.min(x)), float(np.max(x))
    if np.isnan(low) or np.isnan(high) or low < 0 or high > 1:
        fix = "divide it by 255" if low >= 0 and high <= 255 else "give it before Normalize (or un-normalise it)"
        fix = "replace NaN (torch.nan_to_num)" if np.isnan(low) or np.isnan(high) else fix
        raise ValueError(f"{who}: a float tensor image must hold values in 0..1, got {low:g}..{high:g}; {fix}")
    return numpy_to_uint8(x, who)


def tensor_images(t: torch.Tensor, who: str = "predict", alone: bool = True) -> list[np.ndarray]:
    """RGB uint8 [H,W,3] arrays of a tensor: a float [3,H,W] in 0..1, a uint8 [H,W,3] or (``alone``: not inside
    a list) a float batch [B,3,H,W] in 0..1. Anything else is a ValueError naming the accepted forms."""
    t = t.detach().cpu()
    if t.dtype == torch.uint8 and t.ndim == 3 and t.shape[-1] == 3:
        return [t.numpy()]
    if t.is_floating_point() and t.ndim == 3 and t.shape[0] == 3:
        return [_float_chw(t, who)]
    if alone and t.is_floating_point() and t.ndim == 4 and t.shape[1] == 3 and len(t):
        return [_float_chw(x, who) for x in t]
    raise ValueError(
        f"{who}: a {str(t.dtype).replace('torch.', '')} tensor of shape {list(t.shape)} is not an image it takes; "
        f"it takes {TENSOR_FORMS}{_tensor_hint(t)}"
    )


def _expand(item: Any, who: str, alone: bool) -> tuple[list, bool]:
    """One input as ``(images, many)``: a folder's files or a batch tensor's images (many), a tensor image as an
    array, anything else as it is."""
    if isinstance(item, torch.Tensor):
        return tensor_images(item, who, alone), item.ndim == 4
    if isinstance(item, (str, os.PathLike)):
        p = Path(item)
        if p.is_dir():
            if not alone:
                raise ValueError(f"{who}: {item} is a folder inside a list; give the folder alone, or its files")
            return folder_images(p, who), True
        if is_video(p):
            raise ValueError(video_message(item, who))
        if glob.has_magic(os.fspath(item)) and not p.exists():
            raise glob_error(os.fspath(item), who)
    return [item], False


def glob_error(pattern: str, who: str = "predict") -> Exception:
    """The ``ImageReadError`` of a glob pattern given as a path (``dir/*.png``): ``predict`` does not expand
    patterns; it says how many files the pattern matches and the two ways to give them."""
    from detkit.data.image_io import ImageReadError

    found = len(glob.glob(pattern, recursive=True))
    parts = Path(pattern).parts
    plain = next(i for i, part in enumerate(parts) if glob.has_magic(part))  # the folder above the pattern
    folder = os.path.join(*parts[:plain]) if plain else "."
    matches = f"it matches {found} file(s)" if found else "it matches no file either"
    if "**" in pattern:  # a folder is read without its subfolders
        return ImageReadError(
            f"{who}: {pattern} is a glob pattern, and {who} does not expand patterns ({matches}): give the files: "
            f"{who}(model, sorted(glob.glob({pattern!r}, recursive=True)))"
        )
    return ImageReadError(
        f"{who}: {pattern} is a glob pattern, and {who} does not expand patterns ({matches}): give the folder, "
        f"{who}(model, {folder!r}), or the files: {who}(model, sorted(glob.glob({pattern!r})))"
    )


def predict_items(inputs: Any, who: str = "predict") -> tuple[list, bool]:
    """The images of a ``predict`` call and whether it gives one result (a single image, not a list).

    A folder is read as its images (:func:`folder_images`) and a float batch tensor [B,3,H,W] as its images:
    both give a list, as a list input does. Tensors become RGB uint8 arrays (:func:`tensor_images`); numpy images
    stay as given (``to_rgb_array`` converts them by :func:`numpy_to_uint8`). A video is a ValueError that says
    what to use instead.
    """
    if isinstance(inputs, (list, tuple)):
        return [x for item in inputs for x in _expand(item, who, alone=False)[0]], False
    items, many = _expand(inputs, who, alone=True)
    return items, not many


class LazyImages(Sequence):
    """The images of ``predict``'s inputs (checked by ``runner.check_image_input``), each read when indexed: a slice
    reads only its own images, so a loop over batches holds one batch of decoded images at a time.

    ``images[i]`` is an RGB uint8 [H,W,3] array (``runner.to_rgb_array``; the uint16 warning is the caller's, once
    per call); ``images[a:b]`` a list of them. A file that exists but cannot be decoded is an ``ImageReadError``
    naming it and its place among the inputs.
    """

    def __init__(self, items: Sequence[Any], channel_order: str = "rgb", who: str = "predict"):
        self.items, self.channel_order, self.who = items, channel_order, who

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self._read(i) for i in range(*index.indices(len(self.items)))]
        return self._read(range(len(self.items))[index])  # an IndexError past the end ends iteration

    def _read(self, i: int) -> np.ndarray:
        from detkit.data.image_io import ImageReadError
        from detkit.inference.runner import to_rgb_array

        try:
            return to_rgb_array(self.items[i], self.channel_order, self.who, warn=False)
        except ImageReadError as e:
            raise ImageReadError(
                f"{self.who}: {e} (input {i + 1} of {len(self.items)}; {self.who} checks that every file exists "
                "before it starts, and decodes each with its batch: this call returns no results)"
            ) from None


def outside_stacklevel() -> int:
    """The ``stacklevel`` for a ``warnings.warn`` call in the calling function that points at the first frame
    outside detkit (and torch's ``no_grad`` wrappers): the user's line, however deep the call came."""
    import detkit

    inside = tuple(os.path.dirname(m.__file__) + os.sep for m in (detkit, torch))
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(inside):
        frame, level = frame.f_back, level + 1
    return level


def warn_low_uint16(items: Sequence[Any], who: str = "predict") -> None:
    """One UserWarning, at the caller's line, when uint16 numpy images among ``items`` hold only 8-bit values:
    uint16 keeps its high byte (``>> 8``, as 16-bit files are read), which makes them black."""
    maxima = (int(x.max()) for x in items if isinstance(x, np.ndarray) and x.dtype == np.uint16 and x.size)
    low16 = [m for m in maxima if 0 < m < 256]
    if low16:
        warnings.warn(
            f"{who}: {len(low16)} uint16 image(s) hold values only up to {max(low16)} (8-bit data in a 16-bit array?); "
            "uint16 keeps its high byte (>> 8, as 16-bit files are read), which makes them black: convert them "
            "with .astype(np.uint8) first",
            UserWarning,
            stacklevel=outside_stacklevel(),
        )


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
