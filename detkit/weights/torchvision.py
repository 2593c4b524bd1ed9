"""Convert torchvision state dicts (Faster/Mask R-CNN R50-FPN v1, ResNet classifiers) to detkit checkpoints."""

from __future__ import annotations

import inspect
import os
import re
from typing import Any

from torch import Tensor

from detkit.weights.common import (
    COCO_CLASSES,
    ConversionError,
    config_with_classes,
    read_state_dict,
    unwrap_state_dict,
    write_checkpoint,
)

__all__ = [
    "COCO_CATEGORY_IDS",
    "COCO_CLASSES",
    "COCO_UNUSED_IDS",
    "ConversionError",
    "convert_checkpoint",
    "convert_state_dict",
    "detect_kind",
    "reorder_box_predictor",
    "unwrap_state_dict",
]

# COCO category ids 1..90 that are used (80); torchvision's 91-way heads have background at 0.
COCO_UNUSED_IDS = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)
COCO_CATEGORY_IDS = [i for i in range(1, 91) if i not in COCO_UNUSED_IDS]

_RESNET_DEPTHS = {(2, False): 18, (6, False): 34, (6, True): 50, (23, True): 101, (36, True): 152}


def detect_kind(state: dict[str, Tensor]) -> str:
    """'maskrcnn_resnet50_fpn', 'fasterrcnn_resnet50_fpn' or 'resnet{depth}', from the keys."""
    keys = set(state)
    if "backbone.body.conv1.weight" in keys and "roi_heads.box_predictor.cls_score.weight" in keys:
        if "roi_heads.box_head.fc6.weight" not in keys or "backbone.fpn.inner_blocks.0.1.weight" in keys:
            raise ConversionError(
                "torchvision *_v2 detection weights (conv box head, BN in the FPN/RPN) are not "
                "supported; convert fasterrcnn_resnet50_fpn / maskrcnn_resnet50_fpn (v1) weights"
            )
        depth = _resnet_depth(state, "backbone.body.")
        if depth != 50:
            raise ConversionError(
                f"only ResNet-50 FPN detection weights are supported, this backbone is ResNet-{depth}"
            )
        mask = any(k.startswith("roi_heads.mask_predictor.") for k in keys)
        return "maskrcnn_resnet50_fpn" if mask else "fasterrcnn_resnet50_fpn"
    if "conv1.weight" in keys and "layer1.0.conv1.weight" in keys:
        return f"resnet{_resnet_depth(state, '')}"
    sample = ", ".join(sorted(keys)[:4])
    raise ConversionError(
        "unknown state dict: expected torchvision fasterrcnn_resnet50_fpn, maskrcnn_resnet50_fpn "
        f"or a ResNet classifier (keys like 'backbone.body.conv1.weight' or 'conv1.weight'); "
        f"got keys {sample}, ..."
    )


def _resnet_depth(state: dict[str, Tensor], prefix: str) -> int:
    blocks = {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"layer3\.(\d+)\.", k))}
    bottleneck = f"{prefix}layer1.0.conv3.weight" in state
    key = (max(blocks) + 1 if blocks else 0, bottleneck)
    if key not in _RESNET_DEPTHS:
        raise ConversionError(f"unrecognised ResNet layout ({key[0]} blocks in layer3, bottleneck={bottleneck})")
    return _RESNET_DEPTHS[key]


def reorder_box_predictor(
    cls_w: Tensor, cls_b: Tensor, box_w: Tensor, box_b: Tensor, keep: list[int]
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """torchvision FastRCNNPredictor (background at 0, K*4 deltas) -> detkit (background last, C*4 deltas).

    ``keep[c]`` is the torchvision class index of detkit label ``c``.
    """
    order = list(keep) + [0]
    k = cls_w.shape[0]
    box_w = box_w.reshape(k, 4, -1)[keep].reshape(len(keep) * 4, -1)
    box_b = box_b.reshape(k, 4)[keep].reshape(-1)
    return cls_w[order].clone(), cls_b[order].clone(), box_w.clone(), box_b.clone()


_RENAMES = [  # torchvision detection key regex -> detkit key
    (r"^backbone\.body\.", "backbone."),
    (r"^backbone\.fpn\.inner_blocks\.(\d+)\.(?:0\.)?", r"neck.lateral_convs.\1."),
    (r"^backbone\.fpn\.layer_blocks\.(\d+)\.(?:0\.)?", r"neck.output_convs.\1."),
    (r"^rpn\.head\.conv\.(weight|bias)$", r"rpn_head.conv.0.0.\1"),  # torchvision < 0.13 layout
    (r"^rpn\.head\.conv\.(\d+)\.(?:0\.)?", r"rpn_head.conv.\1.0."),
    (r"^rpn\.head\.", "rpn_head."),
    (r"^roi_heads\.box_head\.fc6\.", "box_head.fcs.0."),
    (r"^roi_heads\.box_head\.fc7\.", "box_head.fcs.1."),
    (r"^roi_heads\.mask_head\.mask_fcn(\d+)\.", lambda m: f"mask_head.convs.{int(m.group(1)) - 1}.0."),
    (r"^roi_heads\.mask_head\.(\d+)\.(?:0\.)?", r"mask_head.convs.\1.0."),
    (r"^roi_heads\.mask_predictor\.conv5_mask\.", "mask_head.deconv."),
]


def convert_detection(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str] | None, int]:
    """Rename a torchvision R-CNN state dict to detkit's layout and drop the unused COCO classes.

    Returns (state dict, class names or None, num_classes).
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.endswith(".num_batches_tracked"):  # BatchNorm's counter (weights=None models): detkit freezes BN
            continue
        if key.startswith("roi_heads.box_predictor.") or key.startswith("roi_heads.mask_predictor.mask_fcn_logits."):
            continue
        new = key
        for pattern, repl in _RENAMES:
            new, n = re.subn(pattern, repl, new)
            if n:
                break
        if new == key:
            raise ConversionError(f"unexpected key in the torchvision state dict: {key}")
        out[new] = value
    cls_w = state["roi_heads.box_predictor.cls_score.weight"]
    k = cls_w.shape[0]
    if k == 91:
        keep, names = COCO_CATEGORY_IDS, list(COCO_CLASSES)
    else:  # a model fine-tuned on K-1 classes: keep them all, in order
        keep, names = list(range(1, k)), None
    (
        out["box_head.cls_score.weight"],
        out["box_head.cls_score.bias"],
        out["box_head.bbox_pred.weight"],
        out["box_head.bbox_pred.bias"],
    ) = reorder_box_predictor(
        cls_w,
        state["roi_heads.box_predictor.cls_score.bias"],
        state["roi_heads.box_predictor.bbox_pred.weight"],
        state["roi_heads.box_predictor.bbox_pred.bias"],
        keep,
    )
    if "roi_heads.mask_predictor.mask_fcn_logits.weight" in state:
        out["mask_head.logits.weight"] = state["roi_heads.mask_predictor.mask_fcn_logits.weight"][keep].clone()
        out["mask_head.logits.bias"] = state["roi_heads.mask_predictor.mask_fcn_logits.bias"][keep].clone()
    return out, names, len(keep)


def convert_state_dict(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Convert a torchvision state dict; returns (detkit state dict, info: kind, class_names, num_classes)."""
    kind = detect_kind(state)
    if kind.startswith("resnet"):  # classifier: backbone weights only, fc dropped
        out = {f"backbone.{k}": v for k, v in state.items() if not k.startswith("fc.")}
        return out, {"kind": kind, "class_names": None, "num_classes": None}
    out, names, num_classes = convert_detection(state)
    return out, {"kind": kind, "class_names": names, "num_classes": num_classes}


def _takes_norm_eps(backbone: dict) -> bool:
    """Whether the backbone of config section ``backbone`` has a ``norm_eps`` argument (detkit's ResNet has)."""
    import detkit.models  # noqa: F401  (registers every part)
    from detkit.registry import BACKBONES

    try:
        cls = BACKBONES.get(backbone.get("type"))
        return "norm_eps" in inspect.signature(cls).parameters
    except (KeyError, TypeError, ValueError):
        return False


def _meta_config(config: dict | None, info: dict, norm_eps: float | None) -> dict | None:
    cfg = config_with_classes(config, info["num_classes"])
    model = cfg.get("model", cfg) if cfg is not None else {}
    backbone = model.get("backbone")
    if norm_eps is not None and isinstance(backbone, dict) and _takes_norm_eps(backbone):
        backbone["norm_eps"] = float(norm_eps)
    return cfg


def _check_fits(cfg: dict, state: dict[str, Tensor], kind: str, num_classes: int | None, config_name: str) -> None:
    """Build ``cfg``'s model and match ``state`` to it strictly (a ResNet classifier's weights: to its backbone);
    a mismatch is a ConversionError naming --config and the fix."""
    from detkit.models.backbones.init_weights import without_init_checkpoint
    from detkit.models.build import build_model
    from detkit.utils.checkpoint import state_mismatch

    if kind.startswith("resnet"):
        what, example = (
            f"{kind} weights (its backbone)",
            f"a config whose model.backbone is a ResNet of depth {kind[6:]} with norm BN",
        )
    else:
        what = f"{kind} weights ({num_classes} classes)"
        example = "a config of the same architecture (ResNet-50 FPN, e.g. " + (
            "mask_rcnn_r50_fpn_1x_coco)" if kind.startswith("mask") else "faster_rcnn_r50_fpn_1x_coco)"
        )
    fix = f"--config {config_name} does not fit the converted torchvision {what}: give {example} or leave --config out"
    if not isinstance(cfg.get("model"), dict):
        raise ConversionError(f"{fix} (it has no 'model' section)")
    classifier = kind.startswith("resnet")  # its head (fc) is not converted: matched to the backbone only
    try:
        if classifier:
            import detkit.models  # noqa: F401  (registers every part)
            from detkit.registry import BACKBONES

            spec = {k: v for k, v in cfg["model"]["backbone"].items() if k != "init_checkpoint"}  # shapes only
            own = {f"backbone.{k}": v for k, v in BACKBONES.build(spec).state_dict().items()}
        else:
            own = build_model(without_init_checkpoint(cfg)).state_dict()
    except (KeyError, TypeError, ValueError) as e:
        raise ConversionError(f"{fix}; its model does not build: {e}") from e
    # BatchNorm's counters are left out on both sides: loading fills them in, and a frozen norm has none
    detail = state_mismatch(
        *({k: v for k, v in d.items() if not k.endswith(".num_batches_tracked")} for d in (own, state))
    )
    if detail is not None:
        raise ConversionError(f"{fix}: {detail}")


def convert_checkpoint(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    config: dict | None = None,
    norm_eps: float | None = 0.0,
    config_name: str | None = None,
    class_names: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Read a torchvision state dict from ``src``, write a detkit checkpoint to ``dst`` (atomically).

    ``norm_eps`` (R-CNN weights only) is written into the config's ``model.backbone.norm_eps`` where that
    backbone takes one: torchvision's COCO R-CNN v1 weights expect FrozenBN eps 0 (torchvision overwrites it);
    None leaves the config as is. R-CNN weights are checked against ``config``'s model (strictly, every key and
    shape) before anything is written; ``config_name`` names it in the message. ``class_names``: a file of the
    class names to store (:func:`~detkit.weights.class_names.read_class_names`; default: COCO's for COCO heads,
    none for a fine-tuned head). Returns the checkpoint's ``meta``.
    """
    from detkit.weights.class_names import check_count, read_class_names

    state = read_state_dict(src)
    out, info = convert_state_dict(state)
    if class_names is not None:
        where, weights = f"--class-names {os.fspath(class_names)}", f"torchvision {info['kind']} weights"
        info["class_names"] = check_count(read_class_names(class_names), info["num_classes"], where, weights)
    detection = not info["kind"].startswith("resnet")
    cfg = _meta_config(config, info, norm_eps if detection else None)
    if cfg is not None:
        _check_fits(cfg, out, info["kind"], info["num_classes"], config_name or "CONFIG")
    meta = {
        "class_names": info["class_names"],
        "config": cfg,
        "converted_from": f"torchvision:{info['kind']}",
    }
    return write_checkpoint(dst, out, meta)
