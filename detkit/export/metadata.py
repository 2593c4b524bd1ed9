"""What a deployer needs besides the graph: the test pipeline's input size and preprocessing, read from the config.

``export_metadata`` gives the ONNX metadata entries (string values, JSON where structured): ``task``,
``input_size``, ``preprocess``, ``stride`` and the detectors' test settings. Nothing here is hard-coded: the
values come from the config's test pipeline (``data.test``, else ``data.val``, as ``detkit infer`` uses it)
and from the model (its preprocessor and heads).
"""

from __future__ import annotations

import json
from typing import Any

from torch import nn

__all__ = ["MASK_MIN_OPSET", "export_metadata", "min_opset", "pipeline_input_size", "static_image_size", "task_of"]

MASK_MIN_OPSET = 12  # instance masks: Mask R-CNN's Clip on int64 and YOLO-seg's einsum need opset 12


def test_pipeline_specs(cfg: dict | None) -> list[dict]:
    """The transform specs of the config's test pipeline (``data.test``, else ``data.val``), or []."""
    data = (cfg or {}).get("data") or {}
    split = data.get("test") or data.get("val") or {}
    specs = split.get("pipeline") if isinstance(split, dict) else None
    return [s for s in specs or [] if isinstance(s, dict)]


def _resize_spec(cfg: dict | None) -> dict | None:
    """The first resizing transform of the test pipeline (LetterBox, Resize, ResizeShortestEdge), or None."""
    kinds = ("LetterBox", "Resize", "ResizeShortestEdge", "LongestMaxSize", "SmallestMaxSize")
    return next((s for s in test_pipeline_specs(cfg) if s.get("type") in kinds), None)


def _hw(size: Any) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[1]))


def pipeline_input_size(cfg: dict | None) -> tuple[int, int] | None:
    """The (H, W) every image has after the test pipeline: a LetterBox's ``size`` or a plain Resize's
    ``height``/``width``; None when the size depends on the image (ResizeShortestEdge) or is unknown."""
    spec = _resize_spec(cfg)
    if spec is None:
        return None
    if spec["type"] == "LetterBox":
        return _hw(spec.get("size", 640))
    if spec["type"] == "Resize" and "height" in spec and "width" in spec:
        return int(spec["height"]), int(spec["width"])
    return None


def static_image_size(cfg: dict | None) -> tuple[int, int] | None:
    """The default size of a static export: the pipeline's fixed size; for ResizeShortestEdge a square of its
    ``max_size`` (every resized image fits), else of its largest short side; None when unknown."""
    fixed = pipeline_input_size(cfg)
    if fixed is not None:
        return fixed
    spec = _resize_spec(cfg)
    if spec is not None and spec["type"] == "ResizeShortestEdge":
        short = spec.get("short_sizes", 800)
        side = spec.get("max_size", 1333) or max([short] if isinstance(short, (int, float)) else short)
        return int(side), int(side)
    return None


def task_of(model: nn.Module, module: nn.Module) -> str:
    """detect, segment (instance masks), classify or semantic."""
    kind = getattr(module, "kind", "")
    if kind == "classification":
        return "classify"
    if kind == "semantic":
        return "semantic"
    return "segment" if getattr(module, "with_masks", False) else "detect"


def min_opset(module: nn.Module) -> int:
    """The least ONNX opset that the wrapper's graph needs (instance masks: :data:`MASK_MIN_OPSET`)."""
    return MASK_MIN_OPSET if getattr(module, "with_masks", False) else 11


def preprocess_info(model: nn.Module, module: nn.Module) -> dict[str, Any]:
    """The test pipeline's resize and the graph's input, as a deployer reproduces them."""
    spec = _resize_spec(getattr(model, "cfg", None)) or {}
    kind = spec.get("type")
    info: dict[str, Any] = {"input": "RGB uint8 [B,3,H,W] (H, W multiples of stride; image_sizes int64 [B,2])"}
    if kind == "LetterBox":
        info.update(
            resize="letterbox",
            size=list(_hw(spec.get("size", 640))),
            pad_value=spec.get("pad_value", 114),
            centred=True,
            upscale=bool(spec.get("scaleup", True)),
        )
    elif kind == "ResizeShortestEdge":
        short = spec.get("short_sizes", 800)
        info.update(
            resize="resize-shortest-edge",
            short_side=short if isinstance(short, (int, float)) else list(short),
            max_size=spec.get("max_size", 1333),
            upscale=True,
        )
    elif kind is not None:
        info.update(resize="resize" if kind == "Resize" else kind, upscale=True)
        info.update({k: spec[k] for k in ("height", "width", "max_size") if k in spec})
    else:
        info.update(resize="none")
    if kind is not None:
        info["interpolation"] = spec.get("interpolation", "bilinear")  # (albumentations' Resize: cv2 code, 1 linear)
    pre = getattr(model, "preprocess", None)
    if pre is not None:
        mean = [round(float(v) * 255, 4) for v in pre.mean.flatten()]
        std = [round(float(v) * 255, 4) for v in pre.std.flatten()]
        info["normalize"] = {"in_graph": True, "mean": mean, "std": std}
    info["batch_padding"] = "bottom/right with 0 to a multiple of stride; image_sizes gives each image's (h, w)"
    return info


def export_metadata(model: nn.Module, module: nn.Module) -> dict[str, str]:
    """ONNX metadata entries (strings) besides the class names: task, input_size, preprocess, stride and the
    detectors' test settings (score_thr, max_per_img, nms_pre, nms_thr where the head has them)."""
    cfg = getattr(model, "cfg", None)
    size = pipeline_input_size(cfg)
    meta = {
        "task": task_of(model, module),
        "preprocess": json.dumps(preprocess_info(model, module)),
        "stride": str(int(module.size_divisor)),
    }
    if size is not None:
        meta["input_size"] = json.dumps(list(size))
    settings = dict(getattr(getattr(module, "det", None), "test_cfg", None) or {})
    if getattr(module, "max_per_img", None) is not None:
        settings["max_per_img"] = int(module.max_per_img)
    box = getattr(model, "box_head", None)
    if box is not None:
        settings.update(nms_thr=float(getattr(box, "nms_thr", 0.5)), score_thr=float(box.score_thr))
    for key in ("score_thr", "nms_thr", "nms_pre", "max_per_img"):
        if key in settings:
            meta[key] = json.dumps(settings[key])
    return meta
