"""What an Ultralytics state dict is, read from its keys: YOLOv8 detect / segment (what detkit converts) or
another version or task (YOLO11, YOLOv10, a classifier, a pose model, ...), named in the refusal.

Ultralytics numbers its layers ``model.<index>.`` in the order of the model's yaml; each module type leaves its
own pattern of sub-keys (a C2f has ``cv1``, ``cv2`` and bottlenecks ``m.N.cv1/cv2``, YOLO11's C2PSA has
attention blocks ``m.N.attn``, a Classify head ``conv`` and ``linear``), so the layers' types, and with them the
model's version and task, can be read without the yaml.
"""

from __future__ import annotations

import re
from collections import defaultdict

from torch import Tensor

from detkit.weights.common import ConversionError

SUPPORTED = "detkit converts YOLOv8 n/s/m/l/x detect and segment weights only (docs/models.md)"

# YOLOv8 detect / segment: the layers with parameters and their module types (Upsample / Concat have none)
YOLOV8_LAYERS = {
    **{i: "Conv" for i in (0, 1, 3, 5, 7, 16, 19)},
    **{i: "C2f" for i in (2, 4, 6, 8, 12, 15, 18, 21)},
    9: "SPPF",
}
YOLOV8_HEAD = 22

# module types that only another Ultralytics version has: (version, how the message names the modules)
_VERSIONS = (
    ({"A2C2f"}, "YOLO12", "A2C2f area-attention modules"),
    ({"C3k2"}, "YOLO11", "C3k2 / C2PSA modules"),
    ({"PSA", "SCDown", "C2fCIB", "v10Detect"}, "YOLOv10", "PSA / SCDown / C2fCIB modules"),
    ({"RepNCSPELAN4", "AConv", "SPPELAN"}, "YOLOv9", "RepNCSPELAN4 / AConv / SPPELAN modules"),
    ({"C3Ghost", "GhostConv"}, "YOLOv8-ghost", "GhostConv / C3Ghost modules"),
    ({"C3"}, "YOLOv5u", "C3 modules"),
)
_TASKS = {
    "Detect": "detect",
    "v10Detect": "detect",
    "Segment": "segment",
    "Pose": "pose",
    "OBB": "oriented-box (OBB)",
    "Classify": "classification",
}


def _layers(state: dict[str, Tensor]) -> dict[int, dict[str, Tensor]]:
    """``{layer index: {key below 'model.<index>.': tensor}}``; keys of another form are left out."""
    layers: dict[int, dict[str, Tensor]] = defaultdict(dict)
    for key, value in state.items():
        m = re.match(r"model\.(\d+)\.(.+)$", key)
        if m is not None:
            layers[int(m.group(1))][m.group(2)] = value
    return dict(sorted(layers.items()))


def _head_type(keys: dict[str, Tensor]) -> str:
    top = {k.split(".")[0] for k in keys}
    if "one2one_cv2" in top:
        return "v10Detect"
    if "proto" in top:
        return "Segment"
    if "cv4" in top:  # Pose: keypoints per anchor; OBB: one angle per anchor
        last = max((k for k in keys if re.match(r"cv4\.0\.\d+\.weight$", k)), default=None)
        return "OBB" if last is not None and keys[last].shape[0] == 1 else "Pose"
    return "Detect"


def _block_type(keys: dict[str, Tensor]) -> str:
    """The type of a module with ``cv1``, ``cv2`` and a list of blocks ``m`` (C2f and its relatives)."""
    inner = {k.split(".", 2)[2] for k in keys if k.startswith("m.0.")}
    if any(k.startswith("attn.") for k in inner):
        return "C2PSA"
    if any(k.split(".")[0].isdigit() for k in inner):
        return "A2C2f" if any(".attn." in k for k in inner) else "C3k2"
    if any(k.startswith(("cv3.", "m.")) for k in inner):
        return "C3k2"  # its blocks are C3k modules
    if any(k.startswith("cv1.0.") for k in inner):
        return "C2fCIB"
    return "C2f"


def layer_type(keys: dict[str, Tensor]) -> str:
    """The Ultralytics module type of one layer's keys (``conv.weight``, ``cv1.conv.weight``, ...)."""
    top = {k.split(".")[0] for k in keys}
    if top >= {"cv2", "cv3"} and any(k.startswith("cv2.0.2.") for k in keys):
        return _head_type(keys)
    if top == {"conv", "linear"}:
        return "Classify"
    if top <= {"conv", "bn", "act"}:
        return "Conv"
    if top == {"cv1", "cv2", "m"}:
        return _block_type(keys)
    if top == {"cv1", "cv2", "cv3", "m"}:
        return "C3Ghost" if any(k.startswith("m.0.conv.") for k in keys) else "C3"
    if top == {"attn", "cv1", "cv2", "ffn"}:
        return "PSA"
    if top == {"cv1", "cv2", "cv3", "cv4"}:
        return "RepNCSPELAN4"
    if top == {"cv1"}:
        return "AConv"
    if top == {"cv1", "cv5"}:
        return "SPPELAN"
    if top == {"cv1", "cv2"}:
        cv1, cv2 = keys.get("cv1.conv.weight"), keys.get("cv2.conv.weight")
        if cv1 is not None and cv2 is not None and cv2.shape[1] == 4 * cv1.shape[0]:
            return "SPPF"
        return "SCDown" if cv2 is not None and cv2.shape[1] == 1 and cv2.shape[-1] == 3 else "GhostConv"
    return "unknown (" + ", ".join(sorted(top)[:4]) + ")"


def layer_types(state: dict[str, Tensor]) -> dict[int, str]:
    """``{layer index: Ultralytics module type}`` of a state dict with keys ``model.<index>. ...``."""
    return {i: layer_type(keys) for i, keys in _layers(state).items()}


def _version(types: dict[int, str]) -> tuple[str, str] | None:
    found = set(types.values())
    if "C2PSA" in found:  # YOLO11's; YOLO26 has them with an end-to-end (one-to-one) head
        return ("YOLO26" if types[max(types)] == "v10Detect" else "YOLO11"), "C3k2 / C2PSA modules"
    for modules, version, named in _VERSIONS:
        if found & modules:
            return version, named
    return None


def describe(state: dict[str, Tensor]) -> str | None:
    """What an Ultralytics state dict that is not YOLOv8 detect / segment looks like, in words (None: it is
    YOLOv8 detect / segment, or no Ultralytics layout at all)."""
    types = layer_types(state)
    if not types:
        return None
    last = max(types)
    head = types[last]
    task = _TASKS.get(head)
    version = _version(types)
    if task is None:
        return f"an Ultralytics model without a YOLO head (its last layer, model.{last}, is {head})"
    where = f"{head} head at layer {last}"
    if version is not None:
        return f"a {version[0]} {task} model ({version[1]}, {where})"
    if head == "Classify":
        return f"a YOLOv8 classification model (YOLOv8-cls, {where})"
    if last != YOLOV8_HEAD:
        return f"a YOLO {task} model of another layout ({where}, where YOLOv8 has it at {YOLOV8_HEAD})"
    wrong = [i for i, t in YOLOV8_LAYERS.items() if types.get(i) != t]
    if wrong:
        i = wrong[0]
        got = types.get(i, "no parameters")
        return f"a YOLO {task} model of another layout (layer {i}: {got}, where YOLOv8 has {YOLOV8_LAYERS[i]})"
    if head in ("Pose", "OBB"):
        return f"a YOLOv8 {task} model ({where})"
    return None


def check_yolov8(state: dict[str, Tensor]) -> None:
    """A ConversionError naming what the state dict looks like when it is an Ultralytics model other than
    YOLOv8 detect / segment (another version, a classifier, a pose or OBB model, another layout)."""
    what = describe(state)
    if what is not None:
        raise ConversionError(f"not a YOLOv8 detect / segment state dict: it looks like {what}; {SUPPORTED}")
