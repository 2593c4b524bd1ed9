"""Ultralytics' names of training settings and models, and detkit's for them.

``yolo detect train data=data.yaml model=yolov8n.pt imgsz=640 epochs=100 batch=16 device=0`` is, in detkit,
``detkit train yolo_n_coco --data data.yaml --device 0 --set train.max_epochs=100 data.batch_size=16 ...``.
:func:`translate` gives detkit's form of one ``name=value`` (config keys, flags or the config to train);
:func:`size_keys` the keys of a config that set the image size; :func:`packaged_for` the packaged config of
an Ultralytics model name (``yolov8n``, ``yolov8s-seg.pt``). The tools use them in their messages
(docs/training.md, "Coming from Ultralytics").
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

__all__ = [
    "CONFIG_KEYS",
    "FLAGS",
    "Translation",
    "canonical",
    "packaged_for",
    "size_keys",
    "translate",
    "weights_note",
]

# Ultralytics argument -> detkit config key
CONFIG_KEYS = {
    "epochs": "train.max_epochs",
    "batch": "data.batch_size",
    "lr0": "optimizer.lr",
    "workers": "data.num_workers",
    "momentum": "optimizer.momentum",
    "weight_decay": "optimizer.weight_decay",
    "patience": "train.patience",
    "warmup_epochs": "scheduler.warmup_epochs",
    "optimizer": "optimizer.type",
    "mosaic": "data.train.mosaic.p",
    "mixup": "data.train.mixup.p",
    "close_mosaic": "data.train.close_mosaic.epochs",
}
# Ultralytics argument -> detkit flag of `detkit train` (``model``: the CONFIG argument)
FLAGS = {
    "data": "--data",
    "device": "--device",
    "seed": "--seed",
    "resume": "--resume",
    "exist_ok": "--exist-ok",
    "amp": "--amp",
    "deterministic": "--deterministic",
    "project": "--work-dir",
    "name": "--work-dir",
    "pretrained": "--load-from",
    "model": "CONFIG",
}
# other spellings (YOLOv5's train.py flags) -> the Ultralytics name
ALIASES = {"batch_size": "batch", "img": "imgsz", "img_size": "imgsz", "weights": "pretrained", "cfg": "model"}
NAMES = (*CONFIG_KEYS, *FLAGS, "imgsz")
BOOLEAN_FLAGS = ("resume", "exist_ok", "amp", "deterministic")
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "none", "null", "")

# the resize transforms of a pipeline: their size keys -> how an image size S is written there
RESIZE_KEYS = {
    "LetterBox": ("size",),
    "Resize": ("height", "width"),
    "ResizeShortestEdge": ("short_sizes",),
    "RandomResizedCrop": ("size",),
    "LongestMaxSize": ("max_size",),
    "SmallestMaxSize": ("max_size",),
    "CenterCrop": ("height", "width"),
}

MODEL_NAME = re.compile(r"yolo(?:v?(\d+))?([nsmlx])u?(-seg|-cls|-pose|-obb)?(?:\.pt|\.yaml)?", re.IGNORECASE)
DETECT_SCALES, SEG_SCALES = ("n", "s", "m", "l"), ("n", "s")


def canonical(name: str) -> str | None:
    """The Ultralytics name of ``name`` (``--batch-size`` -> ``batch``), or None when it is none of them."""
    name = ALIASES.get(name.lstrip("-").replace("-", "_").lower(), name.lstrip("-").replace("-", "_").lower())
    return name if name in NAMES else None


def packaged_for(model: str) -> tuple[str, str] | None:
    """``(packaged config, note)`` for an Ultralytics model name (``yolov8n``, ``yolo11s-seg.pt``), else None."""
    m = MODEL_NAME.fullmatch(str(model).replace("\\", "/").rsplit("/", 1)[-1])
    if m is None:
        return None
    version, scale, task = m.group(1), m.group(2).lower(), (m.group(3) or "").lower()
    if task in ("-pose", "-obb"):
        return "yolo_n_coco", f"detkit has no {task[1:]} models; yolo_n_coco detects boxes"
    if task == "-cls":
        return "cspdarknet_n_shapes", "YOLO's backbone as a classifier (resnet50_imagenet for ImageNet)"
    scales = SEG_SCALES if task else DETECT_SCALES
    near = scale if scale in scales else scales[-1]
    name = f"yolo_{near}{'_seg' if task else ''}_coco"
    layout = f"YOLOv8{near}{task}'s layout"
    if near != scale:  # no packaged config of that scale (and task)
        return name, f"detkit packages no {scale}-scale {'seg' if task else 'detection'} config; the nearest: {layout}"
    note = layout if version in (None, "8") else f"the nearest: {layout}"
    return name, note


def _layout_overrides(scale: str, seg: bool, base: str) -> dict:
    """The ``model`` keys that make the packaged config ``base`` YOLOv8's layout of ``scale`` (Ultralytics scales
    the prototype channels, 256, by the width multiple)."""
    from detkit.config import load_config
    from detkit.models.backbones.cspdarknet import SCALES
    from detkit.weights.ultralytics import layout_model
    from detkit.weights.ultralytics_configs import _overrides

    _, width, max_channels = SCALES[scale]
    protos = int(round(min(256, max_channels) * width / 8) * 8)
    layout = {"scale": scale, "seg": seg, "num_classes": 80, "reg_max": 16, "num_protos": 32, "proto_channels": protos}
    return _overrides(layout_model(layout), load_config(base, check=False)["model"])


def weights_note(model: str) -> str:
    """How the weights of the Ultralytics model ``model`` (``yolov8x-seg.pt``) load in detkit: converted for the
    packaged config of :func:`packaged_for` only when it has their layout (YOLOv8, same scale and task)."""
    m = MODEL_NAME.fullmatch(str(model).replace("\\", "/").rsplit("/", 1)[-1])
    found = packaged_for(model)
    if m is None or found is None:
        return ""
    version, scale, task = m.group(1), m.group(2).lower(), (m.group(3) or "").lower()
    convert = "`detkit convert-weights --from ultralytics`"
    if version not in (None, "8") or task not in ("", "-seg"):
        return f"its weights do not load: {convert} reads YOLOv8 detect and segment weights only"
    name = found[0]
    if f"yolo_{scale}_" in name:
        return f"its weights convert with {convert}"
    over = json.dumps(_layout_overrides(scale, bool(task), name), separators=(", ", ": "))
    return (
        f"its weights do not fit {name}: they convert with {convert} for a config file of `_base_: [{name}]` and "
        f"`model: {over}`"
    )


def _as_int(value: Any) -> Any:
    try:
        return int(str(value))
    except ValueError:
        return value


def _walk_sizes(spec: Any, path: str, size: Any, out: list) -> None:
    """Append ``(key, current, new)`` for the size keys of a dataset spec, its pipeline and its inner dataset."""
    if not isinstance(spec, dict):
        return
    mosaic = spec.get("mosaic") if isinstance(spec.get("mosaic"), dict) else {}
    if spec.get("type") == "MixDataset":  # size and its alias mosaic.size (both when both are set), else 640
        keys = [k for k, v in (("size", spec.get("size")), ("mosaic.size", mosaic.get("size"))) if v is not None]
        for key in keys or ["size"]:
            out.append((f"{path}.{key}", spec.get("size") or mosaic.get("size") or 640, size))
    if spec.get("type") == "TiledDataset":
        out.append((f"{path}.tile_size", spec.get("tile_size") or 640, size))
    for i, step in enumerate(spec.get("pipeline") or []):
        if isinstance(step, dict) and step.get("type") in RESIZE_KEYS:
            for key in RESIZE_KEYS[step["type"]]:
                if key in step and step[key] is not None:
                    current = step[key]
                    new = (
                        [size] if key == "short_sizes" else [size] * len(current) if isinstance(current, list) else size
                    )
                    out.append((f"{path}.pipeline.{i}.{key}", current, new))
    _walk_sizes(spec.get("dataset"), f"{path}.dataset", size, out)


def size_keys(cfg: dict | None, size: Any = 640) -> list[tuple[str, Any, Any]]:
    """``(key, current value, value for size)`` of each key of ``cfg`` that sets the image size of training
    (MixDataset ``size``, resize steps of the pipeline) and validation (``LetterBox``, ``ResizeShortestEdge``)."""
    out: list[tuple[str, Any, Any]] = []
    data = (cfg or {}).get("data") if isinstance(cfg, dict) else None
    for split in ("train", "val"):
        _walk_sizes((data or {}).get(split) if isinstance(data, dict) else None, f"data.{split}", _as_int(size), out)
    return out


def _show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


@dataclass
class Translation:
    """detkit's form of one Ultralytics ``name=value``: ``--set`` items, flag tokens, a CONFIG, and a note."""

    name: str
    sets: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    config: str | None = None
    note: str = ""
    checkpoint: str | None = None  # the CHECKPOINT argument (detkit eval's model=)

    def text(self) -> str:
        """The fix in words: ``--set train.max_epochs=10``, ``--device 0``, ``CONFIG yolo_n_coco``, notes."""
        parts = [f"--set {' '.join(map(shlex.quote, self.sets))}"] if self.sets else []
        parts += [" ".join(self.flags)] if self.flags else []
        parts += [f"CONFIG {self.config}"] if self.config else []
        parts += [f"CHECKPOINT {self.checkpoint}"] if self.checkpoint else []
        fix = " ".join(parts)
        if fix and self.note:
            return f"{fix} ({self.note})"
        return fix or self.note


def _config_key(name: str, value: Any, cfg: dict | None) -> Translation:
    key = CONFIG_KEYS[name]
    if name == "optimizer" and str(value).lower() == "auto":
        return Translation(name, note="detkit has no 'auto': optimizer.type is SGD, AdamW or Adam (the config sets it)")
    if name == "momentum":
        return _momentum(value, cfg)
    train = ((cfg or {}).get("data") or {}).get("train") if isinstance(cfg, dict) else None
    if key.startswith("data.train.") and isinstance(train, dict) and train.get("type") != "MixDataset":
        return Translation(name, note=f"this config has no {name}: data.train is {train.get('type')}, not a MixDataset")
    note = {"batch": "images per process", "epochs": "", "mosaic": "its probability"}.get(name, "")
    return Translation(name, sets=[f"{key}={value}"], note=note)


def _momentum(value: Any, cfg: dict | None) -> Translation:
    """``optimizer.momentum`` for SGD; Adam and AdamW have none: Ultralytics sets their beta1 to it."""
    optimizer = (cfg or {}).get("optimizer") if isinstance(cfg, dict) else None
    kind = str(optimizer.get("type", "")) if isinstance(optimizer, dict) else ""
    if kind.lower() in ("adam", "adamw"):
        betas = optimizer.get("betas")
        beta2 = betas[1] if isinstance(betas, (list, tuple)) and len(betas) == 2 else 0.999
        return Translation(
            "momentum",
            sets=[f"optimizer.betas=[{value}, {beta2}]"],
            note=f"this config's optimizer is {kind}: Ultralytics' momentum is its beta1",
        )
    return Translation("momentum", sets=[f"optimizer.momentum={value}"])


def _imgsz(value: Any, cfg: dict | None) -> Translation:
    keys = size_keys(cfg, value)
    if not keys:
        return Translation(
            "imgsz",
            note="set the size keys of the config's data: a YOLO config's data.train.size and its val LetterBox "
            "data.val.pipeline.0.size",
        )
    now = ", ".join(_show(v) for _, v, _ in keys)
    return Translation("imgsz", sets=[f"{k}={_show(new)}" for k, _, new in keys], note=f"now {now}")


def _ultralytics_weights(weights: str, name: str = "pretrained") -> Translation:
    """``--load-from`` of the detkit checkpoint converted from the Ultralytics weights ``weights`` (a ``.pt`` or a
    model name, which Ultralytics downloads), with the two commands that convert it (``--load-from`` refuses a
    ``.pt``: unpickling it runs code)."""
    from pathlib import PurePath

    from detkit.weights.ultralytics import save_state_dict_command

    src = weights if weights.lower().endswith(".pt") else f"{weights}.pt"
    stem = PurePath(src).stem
    state, out = f"{stem}_state.pth", f"{stem}_detkit.pth"
    note = (
        f"Ultralytics weights: convert them first: `{save_state_dict_command(src)}` (writes {state}), then "
        f"`python tools/convert_weights.py --from ultralytics {state} {out}`"
    )
    return Translation(name, flags=["--load-from", out], note=note)


def _flag(name: str, value: Any) -> Translation:
    text = str(value)
    if name == "model":
        found = packaged_for(text)
        if found:
            return Translation(name, config=found[0], note=found[1])
        if text.endswith((".yaml", ".yml")):
            return Translation(name, config=text)
        if text.lower().endswith(".pt"):  # Ultralytics weights (runs/detect/train/weights/best.pt): start from them
            return _ultralytics_weights(text, name)
        if text.lower().endswith(".pth"):  # a detkit checkpoint: its run's config, its weights to start from
            run = PurePosixPath(text.replace("\\", "/")).parent / "config.yaml"
            note = "a detkit checkpoint: the config.yaml of its run, and its weights to start from"
            return Translation(name, config=str(run), flags=["--load-from", text], note=note)
        return Translation(name, note="a config names the model: give CONFIG (`detkit configs` lists them)")
    if name == "device" and "," in text:
        n = len([d for d in text.split(",") if d.strip()])
        return Translation(name, note=f"one process per GPU: torchrun --nproc-per-node {n} (docs/training.md)")
    if name in BOOLEAN_FLAGS:
        if text.lower() in FALSE:
            return Translation(name, note=f"{FLAGS[name]} is off unless given: leave it out")
        flags = [FLAGS[name]] if text.lower() in TRUE else [FLAGS[name], text]
        return Translation(name, flags=flags)
    if name == "pretrained" and text.lower() in (*TRUE, *FALSE):
        return Translation(name, note="give --load-from CKPT to start from a detkit checkpoint (docs/models.md)")
    if name == "pretrained" and (text.lower().endswith(".pt") or packaged_for(text)):
        return _ultralytics_weights(text)
    return Translation(name, flags=[FLAGS[name], text])


def translate(name: str, value: Any, cfg: dict | None = None) -> Translation | None:
    """detkit's form of the Ultralytics setting ``name=value`` for the config ``cfg`` (None: not one of them)."""
    name = canonical(name) or ""
    if name == "imgsz":
        return _imgsz(value, cfg)
    if name in CONFIG_KEYS:
        return _config_key(name, value, cfg)
    if name in FLAGS:
        return _flag(name, value)
    return None
