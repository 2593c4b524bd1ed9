"""Which detkit config fits converted YOLOv8 weights: the check of ``--config`` and, when it does not fit, the
packaged config to use instead (``detkit configs`` lists them), or the lines of a config that would fit.

A model is matched by building it (the packaged candidates on the ``meta`` device: shapes without memory) and
comparing its state dict with the converted one key by key and shape by shape.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import torch
import yaml
from torch import Tensor

from detkit.weights.common import ConversionError

_HEADS = {"YOLOHead": "detect", "YOLOSegHead": "segment"}
MESSAGE_ROOM = 440  # characters of a refusal: the tools print 480 at most, with their name in front


def _flow(value: Any) -> str:
    """``value`` as YAML flow text, whole, for a config the user writes (``{num_classes: 4}``). Not
    :func:`detkit.config_rules.show`: that cuts a text over 60 characters (``...``), and a model section or its
    overrides are longer; the cut text would not read back with ``yaml.safe_load``."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()


def model_mismatch(model_cfg: dict, state: dict[str, Tensor], num_classes: int, meta: bool) -> str | None:
    """How ``state`` fails to fit the model of ``model_cfg`` with ``num_classes`` (None: it fits)."""
    from detkit.models.backbones.init_weights import without_init_checkpoint
    from detkit.models.build import build_model
    from detkit.utils.checkpoint import state_mismatch

    spec = without_init_checkpoint({**model_cfg, "num_classes": num_classes})
    with torch.device("meta") if meta else contextlib.nullcontext():
        own = build_model({"model": spec}).state_dict()
    return state_mismatch(own, state)


def _fits(model_cfg: dict, state: dict[str, Tensor], num_classes: int) -> bool:
    """Whether a candidate's model takes ``state`` (built on the meta device; one that does not build: no)."""
    try:
        return model_mismatch(model_cfg, state, num_classes, meta=True) is None
    except (KeyError, TypeError, ValueError, RuntimeError, NotImplementedError):
        return False


def _yolo_configs() -> dict[str, dict]:
    """``{name: model section}`` of the packaged YOLO configs (detect and segment)."""
    from detkit.config import ConfigError, load_config, packaged_configs

    found = {}
    for name in packaged_configs():
        try:
            model = load_config(name, check=False).get("model")
        except ConfigError:  # a packaged config that does not load is no candidate (its tests report it)
            continue
        if isinstance(model, dict) and isinstance(model.get("head"), dict) and model["head"].get("type") in _HEADS:
            found[name] = model
    return found


def _rank(name: str, model: dict, num_classes: int) -> tuple:
    """Best first: the weights' class count, then the COCO configs (YOLOv8's recipe), then by name."""
    return (model.get("num_classes") != num_classes, not name.endswith("_coco"), name)


def _with_classes(name: str, model: dict, num_classes: int, overrides: dict | None = None) -> str:
    """``--config NAME``, or the config file to write when NAME's model needs ``overrides`` or other classes."""
    over = copy.deepcopy(overrides or {})
    if model.get("num_classes") not in (None, num_classes):
        over["num_classes"] = num_classes
    if not over:
        return f"--config {name}"
    return f"a config file of `_base_: [{name}]` and `model: {_flow(over)}`"


def _overrides(want: dict, have: dict) -> dict:
    """The keys of ``want`` whose values ``have`` does not hold (nested)."""
    out = {}
    for key, value in want.items():
        got = have.get(key) if isinstance(have, dict) else None
        if isinstance(value, dict) and isinstance(got, dict):
            sub = _overrides(value, got)
            if sub:
                out[key] = sub
        elif value != got:
            out[key] = value
    return out


def _fitting(nc: int, state: dict[str, Tensor]) -> tuple[list, tuple[str, dict] | None]:
    """The packaged YOLO configs, best first, and the first whose model takes ``state`` (None: none does)."""
    configs = sorted(_yolo_configs().items(), key=lambda item: _rank(*item, nc))
    fit = next((item for item in configs if _fits(item[1], state, nc)), None)
    return configs, fit


def _leaves(tree: dict) -> int:
    return sum(_leaves(v) if isinstance(v, dict) else 1 for v in tree.values())


def suggest_config(layout: dict, model: dict, state: dict[str, Tensor]) -> tuple[str, bool]:
    """The config to give for weights of ``layout`` (``model``: its :func:`layout_model`, ``state``: the converted
    weights), in words, and whether it is a packaged one: a packaged config whose model takes them (with the
    weights' class count), else one based on the nearest packaged config, else the whole model section."""
    from detkit.config import merge

    nc = layout["num_classes"]
    configs, fit = _fitting(nc, state)
    if fit is not None:
        return _with_classes(*fit, nc), True
    want = {k: v for k, v in model.items() if k != "num_classes"}
    same_head = [(name, cfg) for name, cfg in configs if cfg["head"]["type"] == model["head"]["type"]]
    for name, cfg in sorted(same_head, key=lambda item: _leaves(_overrides(want, item[1])))[:1]:
        over = _overrides(want, cfg)
        if _fits(merge(cfg, over), state, nc):
            return _with_classes(name, cfg, nc, over), False
    return f"a config whose model is {_flow(model)}", False


def describe_model(model: dict) -> str:
    """A config's model in a few words: ``YOLO n detect``, ``TwoStageDetector (ResNet)``."""
    head = model.get("head") if isinstance(model.get("head"), dict) else {}
    backbone = model.get("backbone") if isinstance(model.get("backbone"), dict) else {}
    if head.get("type") in _HEADS and backbone.get("type") == "CSPDarknet":
        return f"YOLO {backbone.get('scale', '?')} {_HEADS[head['type']]}"
    return f"{model.get('type', 'no type')} ({backbone.get('type', 'no backbone')})"


def weights_words(layout: dict) -> str:
    """``yolov8s-seg: scale s, segment head, 80 classes``."""
    task = "segment" if layout["seg"] else "detect"
    tag = f"yolov8{layout['scale']}{'-seg' if layout['seg'] else ''}"
    return f"{tag}: scale {layout['scale']}, {task} head, {layout['num_classes']} classes"


def check_config_fits(model_cfg: dict, state: dict[str, Tensor], layout: dict, model: dict, config_name: str) -> None:
    """A ConversionError naming the config to use when ``state`` does not fit ``model_cfg``'s model (built with
    the weights' class count; ``model``: the layout's model)."""
    try:
        detail = model_mismatch(model_cfg, state, layout["num_classes"], meta=False)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        detail = f"its model does not build: {' '.join(str(e).split())[:120]}"
    if detail is None:
        return
    fix, packaged = suggest_config(layout, model, state)
    use = f": {fix}" if packaged else f" (no packaged config has it): write {fix}"
    msg = (
        f"the weights ({weights_words(layout)}) do not fit the config's model (--config {config_name}: "
        f"{describe_model(model_cfg)}); use a YOLO config of the same scale and head{use}"
    )
    raise ConversionError(msg + _detail(detail, MESSAGE_ROOM - len(msg) - 3))


def _detail(detail: str, room: int) -> str:
    """`` (detail)`` in at most ``room`` characters: its first clauses ("; "-separated) that fit, else none."""
    shown = ""
    for part in detail.split("; "):
        joined = f"{shown}; {part}" if shown else part
        if len(joined) > room:
            break
        shown = joined
    shown = shown or detail.split(", ")[0]  # at least "N of M tensors fit"
    return f" ({shown})" if len(shown) <= room else ""


def check_config_classes(config: dict, layout: dict, config_name: str) -> None:
    """A ConversionError when the config's ``model.num_classes`` is another than the weights', naming the config
    file that would fit."""
    have, nc = config["model"].get("num_classes"), layout["num_classes"]
    if have not in (None, nc):
        raise ConversionError(
            f"--config {config_name} has model.num_classes={have} but the weights have {nc} classes; give "
            f"{_with_classes(config_name, config['model'], nc)}, or leave --config out to keep the weights' classes"
        )


def config_note(layout: dict, model: dict, state: dict[str, Tensor]) -> str:
    """What to say when no config is stored: the config that fits these weights."""
    fix, packaged = suggest_config(layout, model, state)
    where = "" if packaged else "no packaged config has this layout; "
    return f"no config stored (infer and export then need one); {where}{fix} fits these weights"
