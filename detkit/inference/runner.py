"""Run a model on in-memory images: input conversion, the config's test pipeline, batching, CPU outputs."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

ImageInput = Any  # str | os.PathLike | np.ndarray | PIL.Image.Image

__all__ = ["ImageInput", "build_test_pipeline", "predict_arrays", "to_rgb_array"]


def to_rgb_array(item: ImageInput, channel_order: str = "rgb") -> np.ndarray:
    """Return an RGB uint8 [H,W,3] array from a path, a PIL image or a numpy image.

    A numpy image is uint8 [H,W], [H,W,3] or [H,W,4], taken as RGB(A) unless ``channel_order='bgr'``
    (OpenCV's order); grayscale is repeated to three channels and a fourth channel dropped.
    """
    from detkit.data.image_io import read_image

    if channel_order.lower() not in ("rgb", "bgr"):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    if isinstance(item, (str, os.PathLike)):
        return read_image(item)
    if isinstance(item, np.ndarray):
        arr = item
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4):
            raise ValueError(f"predict: a numpy image must be [H,W], [H,W,3] or [H,W,4], got {arr.shape}")
        arr = arr[:, :, :3]
        if channel_order.lower() == "bgr":
            arr = arr[:, :, ::-1]
        if arr.dtype != np.uint8:
            raise ValueError(f"predict: a numpy image must be uint8, got {arr.dtype}")
        return np.ascontiguousarray(arr)
    if hasattr(item, "convert"):  # PIL image
        return np.asarray(item.convert("RGB"))
    raise TypeError(f"predict: unsupported input type {type(item).__name__}; give a path, a numpy image or a PIL image")


def build_test_pipeline(cfg: dict | None) -> Callable[[dict], dict] | None:
    """The resize/letterbox transforms of the config's test (or val) pipeline, or None."""
    if not cfg or "data" not in cfg:
        return None
    from detkit.data.transforms import build_transforms

    data = cfg["data"]
    split = data.get("test") or data.get("val") or {}
    specs = split.get("pipeline") or []
    return build_transforms(specs) if specs else None


def _sample(image: np.ndarray, image_id: int) -> dict:
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


@torch.inference_mode()
def predict_arrays(
    model: nn.Module, images: Sequence[np.ndarray], score_thr: float | None = None, batch_size: int = 1
) -> list[dict]:
    """Run ``model.predict`` on RGB uint8 images [H_i,W_i,3] of any sizes, ``batch_size`` at a time.

    Each image goes through the config's test pipeline (resize), a batch is padded by ``collate``, and
    the model maps its outputs back to each input's pixels. Returns one dict of CPU tensors per image.
    """
    from detkit.data.collate import collate

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pipeline = build_test_pipeline(getattr(model, "cfg", None))
    kwargs = {} if score_thr is None or not _takes_score_thr(model) else {"score_thr": float(score_thr)}
    was_training = model.training
    model.eval()
    results: list[dict] = []
    try:
        for start in range(0, len(images), batch_size):
            samples = [_sample(img, start + j) for j, img in enumerate(images[start : start + batch_size])]
            if pipeline is not None:
                samples = [pipeline(s) for s in samples]
            preds = model.predict(collate(samples), **kwargs)
            results.extend({k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in p.items()} for p in preds)
    finally:
        model.train(was_training)
    return results
