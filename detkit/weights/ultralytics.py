"""Map Ultralytics YOLOv8 (detect / segment) state dicts onto detkit's OneStageDetector.

detkit's CSPDarknet + PAFPN + YOLOHead have YOLOv8's layers, and inside each block the same module names
(``conv``/``bn``, ``cv1``/``cv2``/``m.N``), so the mapping renames the top-level layer indices only. Used to
check detkit against Ultralytics with identical weights (tests, ``tools/benchmark.py --compare ultralytics``)
and to reuse YOLOv8 weights saved as a plain state dict (``torch.save(model.state_dict())``).
"""

from __future__ import annotations

import re

from torch import Tensor

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
    raise KeyError(f"unexpected YOLOv8 head key '{rest}'")


def ultralytics_to_detkit(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a YOLOv8 ``DetectionModel`` / ``SegmentationModel`` state dict (keys ``model.N. ...``) for detkit.

    Raises KeyError for keys that are not YOLOv8's layout (other YOLO versions are not supported).
    """
    seg = any(k.startswith(f"model.{_HEAD}.proto.") for k in state_dict)
    out = {}
    for key, value in state_dict.items():
        m = re.match(r"model\.(\d+)\.(.+)$", key)
        if m is None:
            raise KeyError(f"'{key}' is not a YOLOv8 state-dict key (expected 'model.<layer>.<name>')")
        idx, rest = int(m.group(1)), m.group(2)
        if idx == _HEAD:
            name = _head_key(rest, seg)
        elif idx in _LAYERS:
            name = f"{_LAYERS[idx]}.{rest}"
        else:
            raise KeyError(f"'{key}': layer {idx} has no parameters in YOLOv8's layout")
        if name is not None:
            out[name] = value
    return out
