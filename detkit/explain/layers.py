"""Which layer a class-activation map is taken from: the valid names, the default, and merging pyramid levels.

A CAM needs one tensor ``[B,C,h,w]`` per image batch. A layer qualifies when it runs once per forward pass and
gives such a map, or a list of them (a backbone or a neck: every level, merged by :class:`LevelTap`). The RoI
heads (``box_head``, ``mask_head``) work on pooled regions, not on the image, so their layers do not qualify.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "MAX_MAP_POSITIONS",
    "MIN_MAP_SIDE",
    "ExplainError",
    "LayerInfo",
    "LevelTap",
    "classifier_layer",
    "default_layer",
    "finer_layer",
    "layer_target",
    "probe_layers",
    "resolve_layer",
]

# parts of a detector that see pooled regions (docs/contracts.md names them), never the whole image
ROI_PARTS = ("box_head", "mask_head")
# merged pyramid levels are resized to the finest level with at most this many positions: EigenCAM's SVD
# (the library's get_2d_projection) builds a positions x positions matrix
MAX_MAP_POSITIONS = 4096
# a classifier's default layer is the last one whose map is at least this many positions a side at the input
# size (a 32 px image gives backbone.layer4 a 1x1 map: every heatmap flat)
MIN_MAP_SIDE = 4


class ExplainError(ValueError):
    """A request that ``detkit.explain`` cannot serve (an unknown layer or method, an unsupported model)."""


@dataclass
class LayerInfo:
    """What a probing forward pass saw: the valid layer names in call order, and each one's output."""

    kinds: dict[str, str] = field(default_factory=dict)  # name -> 'map' (one tensor) or 'levels' (a list)
    outputs: dict[str, object] = field(default_factory=dict)  # name -> the output object (kept alive)
    rejected: dict[str, str] = field(default_factory=dict)  # name -> why it does not qualify
    result: object = None  # the wrapped model's output

    @property
    def names(self) -> list[str]:
        return list(self.kinds)


def _is_map(x: object, batch: int) -> bool:
    return isinstance(x, Tensor) and x.dim() == 4 and x.shape[0] == batch


def _describe(x: object) -> str:
    if isinstance(x, Tensor):
        return f"a tensor of shape {list(x.shape)}"
    if isinstance(x, (list, tuple)):
        return f"a {type(x).__name__} of {len(x)} items"
    return f"a {type(x).__name__}"


def probe_layers(wrapper: nn.Module, model: nn.Module, images: Tensor) -> LayerInfo:
    """Run ``wrapper(images)`` once without autograd, recording which modules of ``model`` give feature maps.

    Args:
        wrapper: the adapter that runs ``model`` on normalised images [B,3,H,W].
        model: the detkit model; names are relative to it (``backbone.layer4``, ``neck``).
        images: normalised images [B,3,H,W].
    """
    info = LayerInfo()
    calls: dict[str, int] = {}
    batch = images.shape[0]

    def record(name: str, _module: nn.Module, _inputs: object, output: object) -> None:
        calls[name] = calls.get(name, 0) + 1
        if calls[name] > 1:
            info.kinds.pop(name, None)
            info.rejected[name] = f"runs {calls[name]} times per forward pass (shared across levels)"
        elif _is_map(output, batch):
            info.kinds[name], info.outputs[name] = "map", output
        elif isinstance(output, (list, tuple)) and output and all(_is_map(t, batch) for t in output):
            info.kinds[name], info.outputs[name] = "levels", output
        else:
            info.rejected[name] = f"gives {_describe(output)}, not a feature map [B,C,h,w]"

    handles = []
    for name, module in model.named_modules():
        if not name:
            continue
        if name.split(".")[0] in ROI_PARTS:
            info.rejected[name] = "works on pooled regions (RoIs), not on the image"
            continue
        handles.append(module.register_forward_hook(lambda m, i, o, name=name: record(name, m, i, o)))
    try:
        with torch.no_grad():
            info.result = wrapper(images)
    finally:
        for h in handles:
            h.remove()
    return info


def _nearest_first(name: str, names: Sequence[str]) -> list[str]:
    """``names`` ordered by similarity to ``name`` (difflib's ratio), the most similar first."""
    return sorted(names, key=lambda n: -difflib.SequenceMatcher(None, name, n).ratio())


def _listing(name: str, names: Sequence[str], shown: int = 12) -> str:
    near = _nearest_first(name, names)
    text = ", ".join(near[:shown])
    if len(near) > shown:
        text += f", ... ({len(near)} in all; layer_names(model) of detkit.explain lists them)"
    return text


def resolve_layer(info: LayerInfo, name: str, model_type: str) -> str:
    """Check that ``name`` is a valid layer of the probed model; raise :class:`ExplainError` naming valid ones."""
    if name in info.kinds:
        return name
    valid = _listing(name, info.names)
    if name in info.rejected:
        raise ExplainError(
            f"target_layer '{name}' {info.rejected[name]}; valid layers of this {model_type}, nearest first: {valid}"
        )
    raise ExplainError(
        f"target_layer '{name}' is not a layer of this {model_type}; valid layers, nearest first: {valid}"
    )


def _map_side(out: object) -> int:
    return min(int(v) for v in out.shape[-2:]) if isinstance(out, Tensor) else 0


def finer_layer(info: LayerInfo, layer: str, min_side: int = MIN_MAP_SIDE) -> str | None:
    """The last single-map layer called before ``layer``'s part ends whose map is at least ``min_side`` a side
    (the shallowest name of the modules giving that map: ``backbone.layer3``, not ``backbone.layer3.1``); None
    when ``layer``'s map is already that large or no earlier layer qualifies."""
    if _map_side(info.outputs.get(layer)) >= min_side or info.kinds.get(layer) != "map":
        return None
    part = layer.split(".")[0]
    names = [n for n in info.names if n.split(".")[0] == part and n != part] or info.names
    big = [n for n in names if info.kinds[n] == "map" and _map_side(info.outputs[n]) >= min_side]
    if not big:
        return None
    read = info.outputs[big[-1]]
    return min((n for n in big if info.outputs[n] is read), key=lambda n: (n.count("."), len(n)))


def classifier_layer(info: LayerInfo, model: nn.Module, head: nn.Module) -> str:
    """A classifier's default layer: :func:`default_layer`, or the last layer whose map is at least
    ``MIN_MAP_SIDE`` a side when the map the head pools is smaller (1x1 at 32 px: flat heatmaps)."""
    layer = default_layer(info, model, head)
    return finer_layer(info, layer) or layer


def default_layer(info: LayerInfo, model: nn.Module, head: nn.Module) -> str:
    """The maps that ``head`` reads: the one module that gives the single map it reads (``in_index``), or the
    whole neck (backbone when there is none) when it reads several levels (every level, merged)."""
    part = "neck" if getattr(model, "neck", None) is not None else "backbone"
    levels = info.outputs.get(part)
    index = getattr(head, "in_index", None)
    if isinstance(index, Sequence) and len(index) == 1:
        index = index[0]
    if part not in info.kinds:  # a part that gives no list of maps: the last valid layer before the heads
        inside = [n for n in info.names if n.startswith(f"{part}.")] or info.names
        if not inside:
            raise ExplainError(f"no layer of this {type(model).__name__} gives a feature map [B,C,h,w]")
        return inside[-1]
    if not isinstance(levels, (list, tuple)) or not isinstance(index, int):
        return part
    read = levels[index]
    same = [n for n, out in info.outputs.items() if out is read and n != part]
    return min(same, key=lambda n: (n.count("."), len(n))) if same else part


class LevelTap(nn.Module):
    """Identity on the flattened levels of a part whose output is a list of maps (a backbone, a neck).

    :meth:`attach` hooks the part: its list output goes through this module as one flat tensor [B, sum of
    C_l*h_l*w_l] and comes back as views of it, so the CAM library can hook a single tensor (activations and
    gradients of every level). :meth:`to_map` (the library's ``reshape_transform``) turns that flat tensor into
    one map [B, sum C_l, h, w]: each level resized bilinearly to the finest level with at most
    ``MAX_MAP_POSITIONS`` positions (the coarsest when none is that small) and stacked along the channels.
    """

    def __init__(self):
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, flat: Tensor) -> Tensor:
        return flat

    def attach(self, part: nn.Module) -> torch.utils.hooks.RemovableHandle:
        return part.register_forward_hook(self._split)

    def _split(self, _module: nn.Module, _inputs: object, output: Sequence[Tensor]) -> object:
        self.shapes = [tuple(t.shape[1:]) for t in output]
        flat = self(torch.cat([t.flatten(1) for t in output], 1))  # [B,N]: the library hooks this call
        parts = flat.split([math.prod(s) for s in self.shapes], 1)
        return type(output)(p.view(-1, *s) for p, s in zip(parts, self.shapes))

    def map_size(self) -> tuple[int, int]:
        sizes = sorted({s[1:] for s in self.shapes}, key=lambda hw: -hw[0] * hw[1])
        small = [hw for hw in sizes if hw[0] * hw[1] <= MAX_MAP_POSITIONS]
        return small[0] if small else sizes[-1]

    def to_map(self, flat: Tensor) -> Tensor:
        """Flat levels [B,N] -> one map [B, sum C_l, h, w] (see the class docstring)."""
        size = self.map_size()
        parts = flat.split([math.prod(s) for s in self.shapes], 1)
        maps = [p.reshape(-1, *s) for p, s in zip(parts, self.shapes)]
        return torch.cat(
            [m if m.shape[-2:] == size else F.interpolate(m, size, mode="bilinear", align_corners=False) for m in maps],
            1,
        )


def layer_target(model: nn.Module, info: LayerInfo, name: str) -> tuple[nn.Module, Callable | None, LevelTap | None]:
    """The module the CAM library hooks for layer ``name``, its ``reshape_transform`` and the tap (levels)."""
    module = model.get_submodule(name)
    if info.kinds[name] == "map":
        return module, None, None
    tap = LevelTap()
    return tap, tap.to_map, tap
