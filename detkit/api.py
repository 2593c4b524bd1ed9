"""Library API for pipelines: ``init_model`` builds a model from a config and/or checkpoint, ``predict`` runs it."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from detkit.config import load_config
from detkit.models.build import build_model

ImageInput = Any  # str | os.PathLike | np.ndarray | PIL.Image.Image


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a detkit checkpoint (``{'model': state_dict, 'meta': {...}}``) safely (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt file, or pickled objects that weights_only refuses
        raise ValueError(f"cannot read checkpoint {path}: {e}. detkit checkpoints are loaded with "
                         "weights_only=True; convert foreign weights with tools/convert_weights.py") from e
    if isinstance(ckpt, dict) and "model" in ckpt and isinstance(ckpt["model"], dict):
        return ckpt
    if isinstance(ckpt, dict) and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return {"model": ckpt, "meta": {}}
    raise ValueError(f"{path} is not a detkit checkpoint (expected a dict with a 'model' state dict)")


def init_model(config: str | os.PathLike | dict | None = None, checkpoint: str | os.PathLike | None = None,
               device: str | torch.device | None = None) -> nn.Module:
    """Build a model in eval mode, with its class names and config; weights from ``checkpoint`` when given.

    Without ``config`` the config stored in the checkpoint is used. ``device`` defaults to CUDA when
    available. The model carries ``model.cfg`` (the resolved config) and ``model.class_names``.
    """
    ckpt = load_checkpoint(checkpoint) if checkpoint is not None else None
    meta = (ckpt or {}).get("meta") or {}
    if config is None:
        if not meta.get("config"):
            raise ValueError("init_model: no config given and the checkpoint stores none; pass the config file")
        cfg = meta["config"]
    elif isinstance(config, dict):
        cfg = config
    else:
        cfg = load_config(config)
    class_names = meta.get("class_names")
    if class_names is None and cfg["model"].get("num_classes") is None:
        raise ValueError("init_model: model.num_classes is null and no checkpoint gives class names; "
                         "set model.num_classes or pass a checkpoint trained with this config")
    model = build_model(cfg, class_names=class_names)
    if ckpt is not None:
        missing, unexpected = model.load_state_dict(ckpt["model"], strict=False)
        if missing or unexpected:
            raise ValueError(f"checkpoint {checkpoint} does not fit this config's model: "
                             f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} unexpected "
                             f"(e.g. {unexpected[:3]}); check that config and checkpoint are the same architecture")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model.cfg = cfg
    model.cat_ids = meta.get("cat_ids")  # label -> dataset category id, when known
    return model.to(device).eval()


def _to_rgb_array(item: ImageInput, channel_order: str) -> np.ndarray:
    """Return an RGB uint8 [H,W,3] array from a path, a PIL image or a numpy image."""
    from detkit.data.image_io import read_image

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
    raise TypeError(f"predict: unsupported input type {type(item).__name__}; "
                    "give a path, a numpy image or a PIL image")


def build_test_pipeline(cfg: dict | None):
    """The resize/letterbox transforms of the config's test (or val) pipeline, or None."""
    if not cfg or "data" not in cfg:
        return None
    from detkit.data.transforms import build_transforms

    data = cfg["data"]
    split = data.get("test") or data.get("val") or {}
    specs = split.get("pipeline") or []
    return build_transforms(specs) if specs else None


@torch.inference_mode()
def predict(model: nn.Module, inputs: ImageInput | Sequence[ImageInput], score_thr: float | None = None,
            batch_size: int = 1, channel_order: str = "rgb") -> list[dict] | dict:
    """Run ``model`` on one image or a list of images; returns one dict per image of CPU tensors.

    Inputs: a path, a PIL image, or a numpy uint8 image taken as RGB (``channel_order='bgr'`` for OpenCV
    arrays). Each result has ``boxes`` [N,4] xyxy in the input's pixels, ``scores`` [N], ``labels`` [N]
    (``model.class_names[label]``), ``masks`` bool [N,H,W] for instance models, ``sem_seg`` [H,W] for
    segmentors. A single input gives a single dict.
    """
    from detkit.data.collate import collate

    single = not isinstance(inputs, (list, tuple))
    items = [inputs] if single else list(inputs)
    pipeline = build_test_pipeline(getattr(model, "cfg", None))
    was_training = model.training
    model.eval()
    results: list[dict] = []
    for start in range(0, len(items), batch_size):
        samples = []
        for j, item in enumerate(items[start:start + batch_size]):
            img = _to_rgb_array(item, channel_order)
            sample = {"image": img, "boxes": np.zeros((0, 4), np.float32), "labels": np.zeros((0,), np.int64),
                      "image_id": start + j, "orig_size": img.shape[:2], "scale_factor": (1.0, 1.0),
                      "pad_offset": (0, 0)}
            samples.append(pipeline(sample) if pipeline is not None else sample)
        batch = collate(samples)
        kwargs = {} if score_thr is None else {"score_thr": score_thr}
        preds = model.predict(batch, **kwargs)
        results.extend({k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in p.items()} for p in preds)
    model.train(was_training)
    return results[0] if single else results
