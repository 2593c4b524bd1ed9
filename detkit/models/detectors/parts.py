"""Small helpers shared by detectors: building parts, moving targets, mapping predictions to the original image."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from detkit.models.preprocess import Preprocessor
from detkit.ops.geometry import boxes_to_original
from detkit.ops.masks import paste_masks
from detkit.registry import NECKS, Registry


def build_part(registry: Registry, spec: nn.Module | dict | None, **defaults: Any) -> nn.Module | None:
    """Return ``spec`` itself when it is a module, else build it through ``registry`` (``defaults`` fill gaps)."""
    if spec is None or isinstance(spec, nn.Module):
        return spec
    return registry.build(spec, **defaults)


def build_preprocess(spec: nn.Module | dict | None, defaults: dict | None = None) -> nn.Module:
    """A ``Preprocessor`` from its keyword arguments over the detector's ``defaults``, or the given module.

    A partial spec keeps the defaults it does not name: ``{channels_last: true}`` in a YOLO config keeps YOLO's
    pixels / 255 rather than falling back to the ImageNet mean / std.
    """
    if isinstance(spec, nn.Module):
        return spec
    return Preprocessor(**{**(defaults or {}), **(spec or {})})


def to_channels_last(*parts: nn.Module | None) -> None:
    """Conv weights (4-d parameters and buffers) of ``parts`` in channels_last, in place; None parts skipped."""
    for part in parts:
        if part is not None:
            part.to(memory_format=torch.channels_last)


def default_class_names(num_classes: int, class_names: Sequence[str] | None) -> list[str]:
    """``class_names`` checked against ``num_classes``, or ``class_0 .. class_{C-1}``."""
    if class_names is None:
        return [f"class_{i}" for i in range(num_classes)]
    names = [str(n) for n in class_names]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class_names given for num_classes={num_classes}")
    return names


def targets_to_device(targets: Sequence[dict], device: torch.device) -> list[dict[str, Tensor]]:
    """Copy each target dict's tensors to ``device`` (boxes float32, labels int64)."""
    out = []
    for t in targets:
        d = {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in t.items()}
        d["boxes"] = d["boxes"].to(torch.float32).reshape(-1, 4)
        d["labels"] = d["labels"].to(torch.int64).reshape(-1)
        out.append(d)
    return out


def batch_geometry(batch: dict) -> tuple[list, list, list]:
    """Per image ``scale_factors``, ``pad_offsets``, ``orig_sizes`` (defaults (1,1), (0,0), image_sizes)."""
    sizes = [tuple(int(v) for v in s) for s in batch["image_sizes"]]
    n = len(sizes)
    scales = batch.get("scale_factors") or [(1.0, 1.0)] * n
    pads = batch.get("pad_offsets") or [(0.0, 0.0)] * n
    origs = batch.get("orig_sizes") or sizes
    return list(scales), list(pads), [tuple(int(v) for v in o) for o in origs]


def to_original(
    dets: list[dict[str, Tensor]], batch: dict, mask_probs: list[Tensor] | None = None, mask_thresh: float = 0.5
) -> list[dict[str, Tensor]]:
    """Map detections from network-input pixels to the original images; paste masks at the original size.

    Args:
        dets: per image ``boxes`` [N,4], ``scores`` [N], ``labels`` [N] in input-image pixels.
        batch: the batch (``image_sizes`` and optionally ``scale_factors``, ``pad_offsets``, ``orig_sizes``).
        mask_probs: per image float [N,1,M,M] RoI mask probabilities, or None.
        mask_thresh: probability above which a pixel belongs to the instance.

    Returns:
        per image ``boxes`` float32 [N,4], ``scores``, ``labels`` int64, and ``masks`` bool [N,H0,W0].
    """
    scales, pads, origs = batch_geometry(batch)
    out = []
    for i, d in enumerate(dets):
        boxes = boxes_to_original(d["boxes"].to(torch.float32), scales[i], pads[i], origs[i])
        r = {"boxes": boxes, "scores": d["scores"], "labels": d["labels"].to(torch.int64)}
        if mask_probs is not None:
            r["masks"] = paste_masks(mask_probs[i], boxes, origs[i], padding=1, threshold=mask_thresh)[:, 0]
        out.append(r)
    return out


def neck_defaults(spec: nn.Module | dict | None, backbone: nn.Module) -> dict:
    """The backbone's ``in_channels`` and strides for a neck spec, the strides under the name its class takes.

    Every detector builds its neck with these defaults (a key the spec names wins): FPN's ``in_strides``
    otherwise assume a last stride of 32, wrong for a backbone that stops earlier or is dilated. Strides are
    given only to a neck class that takes ``strides`` or ``in_strides`` (a neck of one's own may take neither),
    and not when the spec's own ``in_channels`` has another number of levels than the backbone gives (the
    fit check then names the keys to change); a backbone without ``strides`` leaves the neck's own default.
    """
    defaults = {"in_channels": getattr(backbone, "out_channels", None)}
    strides = getattr(backbone, "strides", None)
    if strides is None or not isinstance(spec, dict) or spec.get("type") not in NECKS:
        return defaults
    params = inspect.signature(NECKS.get(spec["type"])).parameters
    name = next((n for n in ("strides", "in_strides") if n in params), None)
    given = spec.get("in_channels")
    if name is None or (isinstance(given, (list, tuple)) and len(given) != len(strides)):
        return defaults
    defaults[name] = strides
    return defaults


def per_level_channels(part: nn.Module) -> list[int]:
    """``part.out_channels`` as one count per output level (an int, e.g. FPN's, repeated per stride)."""
    channels = part.out_channels
    return [int(channels)] * len(part.strides) if isinstance(channels, int) else list(channels)
