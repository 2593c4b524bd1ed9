"""Run a model on in-memory images: input conversion, the config's test pipeline, batching, CPU outputs."""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

ImageInput = Any  # str | os.PathLike | np.ndarray | PIL.Image.Image

__all__ = [
    "ImageInput",
    "build_test_pipeline",
    "check_image_input",
    "eval_mode",
    "image_sample",
    "predict_arrays",
    "predict_batch",
    "progress_bar",
    "to_rgb_array",
]


def to_rgb_array(item: ImageInput, channel_order: str = "rgb", who: str = "predict", warn: bool = True) -> np.ndarray:
    """Return an RGB uint8 [H,W,3] array from a path, a PIL image, a numpy image or a tensor image (``predict``'s,
    ``explain``'s and ``draw_prediction``'s one reading of an image).

    A numpy image is [H,W], [H,W,3] or [H,W,4], taken as RGB(A) unless ``channel_order='bgr'`` (OpenCV's order);
    grayscale is repeated to three channels and a fourth channel dropped. uint8 is taken as is; other dtypes are
    converted by ``inputs.numpy_to_uint8`` (uint16: the high byte, with a warning at the caller's line when it
    holds 8-bit values, unless ``warn`` is False; float in 0..1 scaled by 255, in 0..255 rounded). A PIL image is
    read as a file would be: its EXIF orientation applied, 16-bit data keeping its high byte. A tensor is one
    image as ``predict`` takes it (``inputs.tensor_images``: float [3,H,W] in 0..1 or uint8 [H,W,3], RGB); a
    batch [B,3,H,W] is a ValueError. ``who`` names the caller in messages.
    """
    from detkit.data.image_io import read_image
    from detkit.inference.arguments import check_channel_order

    channel_order = check_channel_order(channel_order, who)
    if isinstance(item, torch.Tensor):
        return _tensor_rgb(item, who)
    if isinstance(item, (str, os.PathLike)):
        return read_image(item)
    if isinstance(item, np.ndarray):
        _check_numpy_shape(item, who)
        return _numpy_rgb(item, channel_order, who, warn)
    if _is_pil(item):
        return _pil_rgb(item, who)
    raise _unsupported_type(item, who)


def check_image_input(item: ImageInput, who: str = "predict") -> None:
    """The checks of :func:`to_rgb_array` that decode and convert nothing (``predict`` makes them on every input
    before it reads the first): the type; a path names a readable, non-empty file; a numpy image's shape, dtype
    and values; a PIL image's size.

    Raises:
        TypeError: another type. ImageReadError: a missing, unreadable or empty file (names it).
        ValueError: a numpy or PIL image ``to_rgb_array`` does not take (says why).
    """
    from detkit.inference.inputs import check_numpy_values

    if isinstance(item, (str, os.PathLike)):
        _check_file(os.fspath(item))
    elif isinstance(item, np.ndarray):
        _check_numpy_shape(item, who)
        check_numpy_values(item, who)
    elif _is_pil(item):
        _check_pil_size(item, who)
    else:
        raise _unsupported_type(item, who)


def _unsupported_type(item: Any, who: str) -> TypeError:
    return TypeError(
        f"{who}: unsupported input type {type(item).__name__}; give a path, a numpy image, a PIL image or a tensor "
        "image" + (" (or a list of them)" if who == "predict" else "")
    )


def _check_file(path: str) -> None:
    """An ImageReadError (as ``read_image`` words it) when ``path`` is missing, unreadable or empty."""
    from detkit.data.image_io import ImageReadError

    try:
        size = os.stat(path).st_size
    except OSError as e:
        raise ImageReadError(f"cannot read image file {path}: {e.strerror or e}") from None
    if not os.access(path, os.R_OK):
        raise ImageReadError(f"cannot read image file {path}: Permission denied")
    if size == 0:
        raise ImageReadError(f"cannot decode image file {path}: the file is empty")


def _is_pil(item: Any) -> bool:
    return hasattr(item, "convert") and hasattr(item, "mode")


def _check_pil_size(image: Any, who: str) -> None:
    if image.width == 0 or image.height == 0:
        raise ValueError(f"{who}: a PIL image has no pixels (size {image.size})")


def _check_numpy_shape(arr: np.ndarray, who: str) -> None:
    """A ValueError unless ``arr`` is an image [H,W], [H,W,3] or [H,W,4] with pixels."""
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ValueError(f"{who}: a numpy image must be [H,W], [H,W,3] or [H,W,4], got {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{who}: a numpy image has no pixels (shape {arr.shape})")


def _numpy_rgb(item: np.ndarray, channel_order: str, who: str, warn: bool) -> np.ndarray:
    """A checked numpy image [H,W], [H,W,3] or [H,W,4] (:func:`check_image_input`) as RGB uint8 [H,W,3]."""
    from detkit.inference.inputs import numpy_to_uint8, warn_low_uint16

    arr = np.repeat(item[:, :, None], 3, axis=2) if item.ndim == 2 else item[:, :, :3]
    if channel_order == "bgr":
        arr = arr[:, :, ::-1]
    if warn:
        warn_low_uint16([arr], who)
    return np.ascontiguousarray(numpy_to_uint8(arr, who))


def _tensor_rgb(t: torch.Tensor, who: str) -> np.ndarray:
    """One tensor image (float [3,H,W] in 0..1 or uint8 [H,W,3], RGB) as RGB uint8 [H,W,3]; a batch is refused."""
    from detkit.inference.inputs import tensor_images

    if t.ndim == 4:
        raise ValueError(
            f"{who}: takes one image, got a batch tensor of shape {list(t.shape)}; pass one of its images, t[i] "
            f"(a float [3,H,W] in 0..1), and call {who} once per image"
        )
    return np.ascontiguousarray(tensor_images(t, who, alone=False)[0])


def _pil_rgb(image: Any, who: str = "predict") -> np.ndarray:
    """A PIL image as RGB uint8, as ``read_image`` reads its file: EXIF orientation applied, 16- and 32-bit
    integer data keeping its high byte (``convert('RGB')`` would saturate it), float scaled by its max."""
    from PIL import ImageOps

    from detkit.data.image_io import to_uint8

    image = ImageOps.exif_transpose(image)
    _check_pil_size(image, who)
    if image.mode.startswith("I") or image.mode == "F":  # I;16*, I (32-bit int), F (float)
        arr = np.asarray(image)
        if arr.dtype.kind in "iu" and arr.size and arr.max() > 255:  # 16-bit data: keep the high byte
            arr = np.clip(arr, 0, 65535).astype(np.uint16)
        elif arr.dtype.kind in "iu":  # 8-bit values in a wider container (Image.convert('I'))
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        gray = to_uint8(arr)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    return np.asarray(image.convert("RGB"))


def build_test_pipeline(cfg: dict | None) -> Callable[[dict], dict] | None:
    """The resize/letterbox transforms of the config's test (or val) pipeline, or None."""
    if not cfg or "data" not in cfg:
        return None
    from detkit.data.transforms import build_transforms

    data = cfg["data"]
    split = data.get("test") or data.get("val") or {}
    specs = split.get("pipeline") or []
    return build_transforms(specs) if specs else None


def image_sample(image: np.ndarray, image_id: int) -> dict:
    """The sample dict of an RGB uint8 image [H,W,3] without annotations, as a dataset gives it (no boxes, labels,
    unit scale, no padding): the input of a test pipeline and of ``collate`` for ``model.predict``."""
    return {
        "image": image,
        "boxes": np.zeros((0, 4), np.float32),
        "labels": np.zeros((0,), np.int64),
        "image_id": image_id,
        "orig_size": image.shape[:2],
        "scale_factor": (1.0, 1.0),
        "pad_offset": (0, 0),
    }


def _takes_score_thr(model: nn.Module) -> bool:
    """Whether ``model.predict`` has a ``score_thr`` argument (semantic segmentors have no scores)."""
    try:
        params = inspect.signature(model.predict).parameters
    except (TypeError, ValueError):
        return True
    return "score_thr" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


@torch.no_grad()  # not inference_mode: the results are ordinary tensors a caller may edit in place
def predict_arrays(
    model: nn.Module,
    images: Sequence[np.ndarray],
    score_thr: float | None = None,
    batch_size: int = 1,
    on_batch: Callable[[int], Any] | None = None,
) -> list[dict]:
    """Run ``model.predict`` on RGB uint8 images [H_i,W_i,3] of any sizes, ``batch_size`` at a time.

    Each image goes through the config's test pipeline (resize), a batch is padded by ``collate``, and
    the model maps its outputs back to each input's pixels. ``images`` is sliced one batch at a time and a batch
    is let go before the next slice, so a lazy sequence (``inputs.LazyImages``) holds one batch in memory.
    ``on_batch(n)`` is called after each batch of ``n`` images (a progress bar's ``update``). Returns one dict of
    CPU tensors per image.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pipeline = build_test_pipeline(getattr(model, "cfg", None))
    kwargs = {} if score_thr is None or not _takes_score_thr(model) else {"score_thr": float(score_thr)}
    results: list[dict] = []
    with eval_mode(model):
        for start in range(0, len(images), batch_size):
            preds = predict_batch(model, images[start : start + batch_size], start, pipeline, kwargs)
            results.extend(preds)
            if on_batch is not None:
                on_batch(len(preds))
    return results


def predict_batch(
    model: nn.Module,
    batch: Sequence[np.ndarray],
    first_id: int,
    pipeline: Callable | None,
    kwargs: dict | None = None,
    to_device: Callable[[dict], dict] | None = None,
) -> list[dict]:
    """``model.predict(**kwargs)`` on one batch of RGB uint8 images [H_i,W_i,3] (image ids from ``first_id``), each
    through ``pipeline``, collated (and moved by ``to_device``): one dict of CPU tensors per image."""
    from detkit.data.collate import collate

    samples = [image_sample(img, first_id + j) for j, img in enumerate(batch)]
    if pipeline is not None:
        samples = [pipeline(s) for s in samples]
    collated = collate(samples)
    preds = model.predict(collated if to_device is None else to_device(collated), **(kwargs or {}))
    return [{k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in p.items()} for p in preds]


PROGRESS_MIN_IMAGES = 8  # progress=None shows a bar for more images than this (and than one batch)


def interactive(stream: Any) -> bool:
    """Whether ``stream`` shows a live bar: a terminal, or a Jupyter notebook's output (ipykernel's stream); not a
    file, a pipe or pytest's captured output."""
    if stream is None:
        return False
    if type(stream).__module__.split(".")[0] == "ipykernel":
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(total: int, batch_size: int, progress: bool | None, desc: str = "predict") -> Any:
    """A tqdm bar over ``total`` images on stderr, or None: ``progress`` True always, False never, None when
    ``total`` is over ``PROGRESS_MIN_IMAGES`` and one batch and stderr is a terminal or a notebook's output."""
    if progress is None:
        progress = total > max(batch_size, PROGRESS_MIN_IMAGES) and interactive(sys.stderr)
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, dynamic_ncols=True)


_GATES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_GATES_LOCK = threading.Lock()


class _ModeGate:
    """Who runs a model now: calls on it in eval mode run together; a call that finds it in train mode waits for
    them, switches it to eval, runs alone and switches it back."""

    def __init__(self):
        self.cond = threading.Condition()
        self.running = 0  # calls in eval mode
        self.switched = False  # a call switched the model to eval and runs alone
        self.owner: int | None = None  # that call's thread (a call it makes in turn just runs)

    @contextlib.contextmanager
    def enter(self, model: nn.Module) -> Iterator[None]:
        if self.switched and self.owner == threading.get_ident():
            yield
            return
        with self.cond:
            self.cond.wait_for(lambda: not self.switched)
            switch = model.training
            if switch:
                self.cond.wait_for(lambda: self.running == 0 and not self.switched)
                self.switched, self.owner = True, threading.get_ident()
                model.eval()
            else:
                self.running += 1
        try:
            yield
        finally:
            with self.cond:
                if switch:
                    model.train(True)
                    self.switched, self.owner = False, None
                else:
                    self.running -= 1
                self.cond.notify_all()


def _gate(model: nn.Module) -> _ModeGate:
    with _GATES_LOCK:
        return _GATES.setdefault(model, _ModeGate())


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode inside the block and in its former mode after it, safe across threads: threads that
    predict with one model share its ``training`` flag, so a model found in train mode is switched (and switched
    back) only while no other call runs on it, lest one thread's switch back land in another's forward pass
    (BatchNorm would update its statistics). Calls on a model in eval mode run concurrently. An ensemble (``tta``,
    a list of models: a new ``Ensemble`` each call) is gated through each of its members, in one order."""
    members = list(getattr(model, "models", None) or [model])
    with contextlib.ExitStack() as stack:
        for member in sorted(members, key=id):  # one order: two calls never wait on each other's gates
            stack.enter_context(_gate(member).enter(member))
        own = model.training
        model.training = False  # the wrapper's own flag (its members are in eval mode now)
        try:
            yield
        finally:
            model.training = own
