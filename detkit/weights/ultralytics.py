"""Map Ultralytics YOLOv8 (detect / segment) state dicts onto detkit's OneStageDetector.

detkit's CSPDarknet + PAFPN + YOLOHead have YOLOv8's layers, and inside each block the same module names
(``conv``/``bn``, ``cv1``/``cv2``/``m.N``), so the mapping renames the top-level layer indices only. Used to
check detkit against Ultralytics with identical weights (tests, ``tools/benchmark.py --compare ultralytics``)
and to reuse YOLOv8 weights saved as a plain state dict (``tools/convert_weights.py --from ultralytics``).

An Ultralytics ``.pt`` file holds a pickled model, which is never unpickled here (that would run code from the
file); save its state dict and class names with Ultralytics first (:func:`save_state_dict_command`).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from detkit.weights.common import (
    COCO_CLASSES,
    ConversionError,
    config_with_classes,
    read_weights_file,
    unwrap_state_dict,
    write_checkpoint,
)


def save_state_dict_command(src: str | os.PathLike) -> str:
    """A shell line that saves the weights and class names of the Ultralytics checkpoint ``src`` (a ``.pt``) as
    ``<stem>_state.pth`` in the current folder: tensors, a dict and strings, which detkit reads without
    unpickling."""
    out = f"{Path(src).stem}_state.pth"
    code = (
        f"import torch; from ultralytics import YOLO; m = YOLO({json.dumps(os.fspath(src))}).model; "
        f'torch.save({{"model": m.state_dict(), "names": m.names}}, {json.dumps(out)})'
    )
    return f"python -c {shlex.quote(code)}"


# YOLOv8 layer index -> detkit module prefix
_LAYERS = {
    0: "backbone.stem",
    1: "backbone.stages.0.0",
    2: "backbone.stages.0.1",
    3: "backbone.stages.1.0",
    4: "backbone.stages.1.1",
    5: "backbone.stages.2.0",
    6: "backbone.stages.2.1",
    7: "backbone.stages.3.0",
    8: "backbone.stages.3.1",
    9: "backbone.stages.3.2",
    12: "neck.top_down.0",
    15: "neck.top_down.1",
    16: "neck.downsample.0",
    18: "neck.bottom_up.0",
    19: "neck.downsample.1",
    21: "neck.bottom_up.1",
}
_HEAD = 22
_DET = {"cv2": "box_branch", "cv3": "cls_branch"}
_PROTO = {"cv1": "0", "upsample": "1", "cv2": "2", "cv3": "3"}


def _head_key(rest: str, seg: bool) -> str | None:
    """detkit name of a key under the YOLOv8 Detect / Segment layer (None: drop it)."""
    part, _, tail = rest.partition(".")
    if part == "dfl":  # the fixed 0..15 projection: a buffer in detkit
        return None
    if part in _DET:
        return ("head.det." if seg else "head.") + f"{_DET[part]}.{tail}"
    if seg and part == "cv4":
        return f"head.coef_branch.{tail}"
    if seg and part == "proto":
        sub, _, t = tail.partition(".")
        return f"head.proto.{_PROTO[sub]}.{t}"
    raise ConversionError(f"unexpected YOLOv8 head key 'model.{_HEAD}.{rest}'")


def ultralytics_to_detkit(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a YOLOv8 ``DetectionModel`` / ``SegmentationModel`` state dict (keys ``model.N. ...``) for detkit.

    Raises :class:`ConversionError` for keys that are not YOLOv8's layout (other YOLO versions are not
    supported).
    """
    seg = any(k.startswith(f"model.{_HEAD}.proto.") for k in state_dict)
    out = {}
    for key, value in state_dict.items():
        m = re.match(r"model\.(\d+)\.(.+)$", key)
        if m is None:
            raise ConversionError(f"'{key}' is not a YOLOv8 state-dict key (expected 'model.<layer>.<name>')")
        idx, rest = int(m.group(1)), m.group(2)
        if idx == _HEAD:
            name = _head_key(rest, seg)
        elif idx in _LAYERS:
            name = f"{_LAYERS[idx]}.{rest}"
        else:
            raise ConversionError(f"'{key}': layer {idx} has no parameters in YOLOv8's layout")
        if name is not None:
            out[name] = value
    return out


def ultralytics_layout_outputs(model: nn.Module, images: Tensor) -> Tensor:
    """What YOLOv8 returns in eval mode, computed by detkit's ``model``: [B, 4 + C (+ P), A].

    Per anchor (YOLOv8's order: levels by increasing stride, rows then columns): box centre and size (xywh,
    input pixels), class probabilities and, for a segmentation head, the P mask coefficients. ``images``:
    normalised float [B,3,H,W]. A YOLOv8 model with converted weights returns the same (the equivalence
    tests and ``tools/benchmark.py --compare ultralytics`` compare them).
    """
    raw = model.forward_raw(images)
    seg = isinstance(raw, tuple)
    head = model.head.det if seg else model.head
    bins, logits, points, strides = head.flatten(raw[0] if seg else raw)
    boxes = head.decode(bins, points, strides)  # [B,A,4] xyxy
    parts = [(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2], logits.sigmoid()]
    if seg:
        parts.append(model.head.coefficients(raw[1]))
    return torch.cat(parts, -1).transpose(1, 2)


# YOLOv8's stem width per scale, and the C2f blocks per neck stage (detkit's PAFPN num_blocks)
_STEM_WIDTHS = {16: "n", 32: "s", 48: "m", 64: "l", 80: "x"}
_NECK_BLOCKS = {"n": 1, "s": 1, "m": 2, "l": 3, "x": 3}


def detect_layout(state: dict[str, Tensor]) -> dict[str, Any]:
    """``scale``, ``seg``, ``num_classes``, ``reg_max`` (and ``num_protos``, ``proto_channels``) of a YOLOv8
    state dict, from its tensor shapes. Another Ultralytics model (YOLO11, a classifier, ...) is a
    :class:`ConversionError` that names what it looks like."""
    from detkit.weights.ultralytics_arch import check_yolov8

    check_yolov8(state)
    names = ("model.0.conv.weight", f"model.{_HEAD}.cv2.0.2.weight", f"model.{_HEAD}.cv3.0.2.weight")
    if any(n not in state for n in names):
        sample = ", ".join(sorted(state)[:4])
        raise ConversionError(
            f"not a YOLOv8 detect / segment state dict: expected keys {', '.join(names)}; got keys {sample}, ..."
        )
    stem, box, cls = (state[n] for n in names)
    width = int(stem.shape[0])
    if width not in _STEM_WIDTHS:
        raise ConversionError(f"a YOLOv8 stem of {width} channels is none of the scales n/s/m/l/x ({_STEM_WIDTHS})")
    layout = {
        "scale": _STEM_WIDTHS[width],
        "seg": f"model.{_HEAD}.proto.cv1.conv.weight" in state,
        "num_classes": int(cls.shape[0]),
        "reg_max": int(box.shape[0]) // 4,
    }
    if layout["seg"]:
        layout["num_protos"] = int(state[f"model.{_HEAD}.proto.cv3.conv.weight"].shape[0])
        layout["proto_channels"] = int(state[f"model.{_HEAD}.proto.cv1.conv.weight"].shape[0])
    return layout


def layout_model(layout: dict[str, Any]) -> dict[str, Any]:
    """The detkit ``model`` config of a :func:`detect_layout` result (YOLOv8's layout, detkit's defaults)."""
    det = {"reg_max": layout["reg_max"]}
    head = (
        {
            "type": "YOLOSegHead",
            "num_protos": layout["num_protos"],
            "proto_channels": layout["proto_channels"],
            "det": det,
        }
        if layout["seg"]
        else {"type": "YOLOHead", **det}
    )
    return {
        "type": "OneStageDetector",
        "num_classes": layout["num_classes"],
        "backbone": {"type": "CSPDarknet", "scale": layout["scale"]},
        "neck": {"type": "PAFPN", "num_blocks": _NECK_BLOCKS[layout["scale"]]},
        "head": head,
    }


def _names(obj: Any, given: Sequence[str] | str | os.PathLike | None, layout: dict, src: Any) -> tuple[list, str]:
    """The class names to store and where they come from: ``given`` (names, or a file to read them from), else
    the ``names`` saved beside the state dict in ``src``, else COCO's for 80 classes (assumed), else none."""
    from detkit.weights.class_names import check_count, names_of, read_class_names

    nc, weights = layout["num_classes"], "weights"
    if isinstance(given, (str, os.PathLike)):
        return check_count(read_class_names(given), nc, f"--class-names {os.fspath(given)}", weights), "given"
    if given is not None:
        return check_count(names_of(list(given), "class_names"), nc, "class_names", weights), "given"
    stored = obj.get("names") if isinstance(obj, dict) else None
    if stored is not None:
        where = f"weights file {src}: its 'names'"
        return check_count(names_of(stored, where), nc, where, weights), "weights file"
    if nc == len(COCO_CLASSES):
        return list(COCO_CLASSES), "assumed"
    return None, "none"


def _check_layout_fits(model: dict, state: dict[str, Tensor], nc: int, name: str) -> None:
    from detkit.weights.ultralytics_configs import model_mismatch

    detail = model_mismatch(model, state, nc, meta=False)
    if detail is not None:
        raise ConversionError(f"the weights ({name}) do not fit detkit's model of that layout: {detail[:300]}")


def convert_checkpoint(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    config: dict | None = None,
    config_name: str | None = None,
    class_names: Sequence[str] | str | os.PathLike | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Read a YOLOv8 state dict from ``src``, check it against detkit's model, write a detkit checkpoint.

    The model checked is ``config``'s (its ``model.num_classes`` set from the weights, stored in the
    checkpoint's meta; ``config_name`` names it in a refusal, which names the packaged config that fits) or,
    without a config, the one of the weights' layout (:func:`layout_model`; no config stored). Floating tensors
    are stored as float32. The class names stored: ``class_names`` (names, or a file: :func:`read_class_names`),
    else the ``names`` saved beside the state dict (:func:`save_state_dict_command`), else COCO's for 80
    classes. ``notes`` (a list) gets what the user should know: COCO names assumed, the config that fits.
    Returns the checkpoint's ``meta``.
    """
    from detkit.weights import ultralytics_configs as fits

    obj = read_weights_file(
        src,
        hint=f"; convert what this saves: {save_state_dict_command(src)}",
    )
    state = unwrap_state_dict(obj, str(src))
    layout = detect_layout(state)
    out = {k: v.float() if v.is_floating_point() else v for k, v in ultralytics_to_detkit(state).items()}
    nc, model = layout["num_classes"], layout_model(layout)
    tag = f"yolov8{layout['scale']}{'-seg' if layout['seg'] else ''}"
    names, origin = _names(obj, class_names, layout, src)
    config_name = config_name or "CONFIG"
    if config is not None:
        if not isinstance(config.get("model"), dict):
            raise ConversionError(f"--config {config_name} has no 'model' section")
        fits.check_config_fits(config["model"], out, layout, model, config_name)
        fits.check_config_classes(config, layout, config_name)
    else:
        _check_layout_fits(model, out, nc, f"{tag}, {nc} classes")
    if notes is not None:
        notes.extend(_notes(names, origin, nc))
        if config is None:
            notes.append(fits.config_note(layout, model, out))
    meta = {"class_names": names, "config": config_with_classes(config, nc), "converted_from": f"ultralytics:{tag}"}
    return write_checkpoint(dst, out, meta)


def _notes(names: list[str] | None, origin: str, nc: int) -> list[str]:
    """What the user should know about the stored class names."""
    fix = "pass --class-names FILE (a text file, data.yaml or COCO json) for the model's own names"
    if origin == "assumed":
        shown = ", ".join(names[:3])
        return [f"the weights have {nc} classes and no names were given: COCO's names assumed ({shown}, ...); {fix}"]
    if names is None:
        return [f"no class names stored: detkit calls the {nc} classes class_0 .. class_{nc - 1}; {fix}"]
    return []
