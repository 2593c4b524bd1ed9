"""What the weight converters share: reading a state dict safely, the stored config, writing a checkpoint."""

from __future__ import annotations

import copy
import os
import re
from typing import Any

import torch
from torch import Tensor

from detkit.utils.files import atomic_write

# the 80 COCO classes in the order of their category ids (torchvision's and Ultralytics' COCO label order)
COCO_CLASSES = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
]


class ConversionError(ValueError):
    """A state dict that a converter does not know; the message says what was expected."""


def unwrap_state_dict(obj: Any, src: str = "checkpoint") -> dict[str, Tensor]:
    """The tensors of a plain state dict or of one under ``model`` / ``state_dict`` (``module.`` stripped)."""
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ConversionError(
            f"{src}: not a state dict (expected a dict of tensors, or one under 'model'/'state_dict')"
        )
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return dict(obj)


def read_weights_file(src: str | os.PathLike, hint: str = "") -> Any:
    """What the torch file ``src`` holds, read with ``torch.load(weights_only=True)`` (no code is unpickled).

    A file that cannot be read as a torch file (missing, empty, YAML, random bytes, ...) is a
    :class:`~detkit.utils.checkpoint.CheckpointError` naming it and the fix (one line); ``hint`` is added to
    the message, in place of the generic fix, when the file is a torch file the weights-only reader refused
    (the message is cut at 480 characters: keep ``hint`` short).
    """
    from detkit.utils.checkpoint import CheckpointError, file_kind, read_torch_file

    try:
        return read_torch_file(src, map_location="cpu", what="weights file")
    except CheckpointError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e.__cause__))
        if hint and found and file_kind(src) in ("torch-zip", "pickle"):  # short, so that the hint is read
            raise CheckpointError(
                f"weights file {src} holds Python objects ({found[1].rsplit('.', 1)[-1]}), which detkit never "
                f"unpickles{hint}"
            ) from e
        raise


def read_state_dict(src: str | os.PathLike, hint: str = "") -> dict[str, Tensor]:
    """The state dict in the file ``src`` (:func:`read_weights_file`); a readable file that holds no state dict
    is a :class:`ConversionError`."""
    return unwrap_state_dict(read_weights_file(src, hint), str(src))


def config_with_classes(config: dict | None, num_classes: int | None) -> dict | None:
    """A copy of ``config`` whose ``model.num_classes`` is the weights' (an error when it says otherwise)."""
    if config is None:
        return None
    cfg = copy.deepcopy(config)
    model = cfg.get("model", cfg)
    if num_classes is not None:
        if model.get("num_classes") not in (None, num_classes):
            raise ConversionError(
                f"the config has model.num_classes={model.get('num_classes')} but the weights have "
                f"{num_classes} classes; leave --config out to keep the weights' classes, or give a config "
                f"whose model.num_classes is {num_classes} (or null)"
            )
        model["num_classes"] = num_classes
    return cfg


def write_checkpoint(dst: str | os.PathLike, state: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Write ``{'model': state, 'meta': meta}`` to ``dst`` atomically; returns the meta written (with
    ``version``, detkit's)."""
    import detkit

    meta = {**meta, "version": detkit.__version__}
    atomic_write(dst, lambda f: torch.save({"model": state, "meta": meta}, f))
    return meta
