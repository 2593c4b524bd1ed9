"""Check a config against what the code accepts: every key in every section, and its value.

What is checked (docs/configs.md):

- top-level sections: ``model``, ``data``, ``train``, ``optimizer``, ``scheduler``, ``seed``, ``work_dir``;
- parts built from a registry (``{type: Name, ...}``: detectors, backbones, necks, heads, datasets, detkit
  transforms): each key is a keyword argument of the constructor (a ``**kwargs`` constructor takes any),
  each value obeys ``detkit.config_rules.PARAM_RULES`` or the constructor's type hint where that is precise;
  nested parts (``model.backbone``, ``data.train.dataset``), pipelines (detkit and albumentations
  transforms by name, ``BboxParams``) and plain option mappings (``model.preprocess``, ``head.det``,
  ``mosaic``) likewise;
- ``data`` (``DATA_RULES``), ``train`` (``TRAIN_RULES``), ``optimizer`` / ``scheduler``
  (``OPTIMIZER_RULES`` / ``SCHEDULER_RULES``): declarative tables of key -> rule;
- old spellings of the test settings (``score_thresh``, ``detections_per_img``, ...): the new key is named.

Every problem names the key, the file that set it (``Sources`` from ``detkit.config.load_config``: a
``_base_`` file, the config itself, or ``--set``) and the fix (the nearest valid key, or the rule).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from detkit.config import SET_ORIGIN, ConfigError, Sources
from detkit.config_problems import ConfigProblems, dotted, nearest
from detkit.config_rules import (
    PARAM_RULES,
    PROBABILITY,
    Rule,
    either,
    integer,
    list_of,
    number,
    rule_from_hint,
    section,
    show,
    text,
)
from detkit.peer_names import D2_CONFIG, detectron2_sections
from detkit.registry import BACKBONES, DATASETS, DETECTORS, HEADS, NECKS, TRANSFORMS, Registry

REGISTRIES = {r.name: r for r in (BACKBONES, NECKS, HEADS, DETECTORS, DATASETS, TRANSFORMS)}

DATA_RULES: dict[str, Rule] = {
    "batch_size": integer(min=1),  # per process
    "num_workers": integer(min=0),
    "val_batch_size": integer(min=1, none=True),
    "size_divisor": integer(min=1),
    "repeat_threshold": number(min=0, none=True),  # repeat-factor sampling of the training images (0: off)
}
DATA_SPLITS = {"train": DATASETS, "val": DATASETS, "test": DATASETS}  # data keys that hold a dataset

# Keyword arguments of registry-built parts that are parts themselves: owner registry -> param -> registry.
PART_PARAMS: dict[str, dict[str, str]] = {
    "detector": {
        "backbone": "backbone",
        "neck": "neck",
        "rpn_head": "head",
        "box_head": "head",
        "mask_head": "head",
        "head": "head",
        "decode_head": "head",
        "auxiliary_head": "head",
    },
    "dataset": {"dataset": "dataset"},
}
# Keyword arguments that are transform pipelines (lists of ``{type: ...}``): owner registry -> params.
PIPELINE_PARAMS: dict[str, tuple[str, ...]] = {"dataset": ("pipeline",)}


@dataclass(frozen=True)
class KeywordsOf:
    """A mapping (no ``type``) passed as keyword arguments to ``target`` (``'module:Name'``), less ``exclude``."""

    target: str
    exclude: tuple[str, ...] = ()

    def resolve(self) -> Callable:
        module, name = self.target.split(":")
        return getattr(importlib.import_module(module), name)


# Plain option mappings of a part: (owner registry, owner type or '*', param) -> their keys.
OPTION_PARAMS: dict[tuple[str, str, str], KeywordsOf | Rule] = {
    ("detector", "*", "preprocess"): KeywordsOf("detkit.models.preprocess:Preprocessor"),
    ("head", "YOLOSegHead", "det"): KeywordsOf(
        "detkit.models.heads.yolo:YOLOHead", exclude=("num_classes", "in_channels", "strides")
    ),
    ("dataset", "MixDataset", "mosaic"): section(
        {
            "p": PROBABILITY,
            "size": either(integer(min=1), list_of(integer(min=1), length=2), none=True),
            "center_range": list_of(number(0, 1), length=2),
            "min_visibility": PROBABILITY,
        },
        none=True,
    ),
    ("dataset", "MixDataset", "mixup"): section({"p": PROBABILITY, "alpha": number(above=0)}, none=True),
    ("dataset", "MixDataset", "close_mosaic"): section(
        {"epochs": integer(min=0), "max_epochs": integer(min=1, none=True)}, none=True
    ),
}


def check_section(
    problems: ConfigProblems,
    rules: Mapping[str, Rule],
    value: Any,
    path: tuple,
    parts: Mapping[str, Registry] | None = None,
) -> None:
    """Check a mapping whose keys are those of ``rules`` (``train``, ``train.ema``, ...) and of ``parts``
    (keys holding a registry spec or null, e.g. ``data.train``); a null mapping is allowed."""
    parts = parts or {}
    if value is None:
        return
    if not isinstance(value, dict):
        problems.value(path, f"must be a mapping of {', '.join([*rules, *parts])}, got {show(value)}")
        return
    for key, v in value.items():
        sub = (*path, key)
        if key in parts:
            if v is not None:
                check_part(problems, parts[key], v, sub)
        elif key not in rules:
            problems.unknown(sub, [*rules, *parts], value=v)
        else:
            problems.value(sub, rules[key].problem(v))
            if rules[key].kind == "section" and isinstance(v, dict):
                check_section(problems, rules[key].fields, v, sub)


@functools.cache
def accepted(target: Callable) -> tuple[dict[str, inspect.Parameter], bool, dict[str, Any]]:
    """``target``'s keyword parameters, whether it takes ``**kwargs``, and its type hints (empty if unknown)."""
    sig = inspect.signature(target)
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = {n: p for n, p in sig.parameters.items() if p.kind in kinds}
    var_kw = next((p for p in sig.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD), None)
    try:
        hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    except Exception:  # a hint that does not evaluate: its values are not checked
        hints = {}
    typed = unpacked_keys(hints.get(var_kw.name)) if var_kw is not None else None
    if typed is not None:  # ``**loss: Unpack[SomeTypedDict]``: exactly the TypedDict's keys
        for name, hint in typed.items():
            params[name] = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY)
            hints[name] = hint
    return params, var_kw is not None and typed is None, hints


def unpacked_keys(hint: Any) -> dict[str, Any] | None:
    """The keys and hints of ``Unpack[TD]`` for a TypedDict ``TD`` (None for any other hint)."""
    if hint is None or repr(typing.get_origin(hint)).rsplit(".", 1)[-1] != "Unpack":  # typing or typing_extensions
        return None
    args = typing.get_args(hint)
    if len(args) != 1 or not typing.is_typeddict(args[0]):
        return None
    return typing.get_type_hints(args[0])


def param_rule(name: str, param: inspect.Parameter, hint: Any) -> Rule | None:
    """The rule of one keyword argument: ``PARAM_RULES`` by name, else its type hint; null where the code takes it."""
    hinted = rule_from_hint(hint) if hint is not None else None
    rule = PARAM_RULES.get(name, hinted)
    if rule is not None and not rule.none and (param.default is None or (hinted is not None and hinted.none)):
        rule = replace(rule, none=True)
    return rule


def check_kwargs(
    problems: ConfigProblems,
    target: Callable,
    given: dict,
    path: tuple,
    owner: tuple[str, str] = ("", ""),
    exclude: tuple[str, ...] = (),
    values: bool = True,
) -> None:
    """Check ``given`` (less ``type``) as keyword arguments of ``target``; ``owner`` = (registry, type name)
    selects nested parts, pipelines and option mappings; ``values=False`` checks the keys only."""
    params, takes_any, hints = accepted(target)
    valid = {k: p for k, p in params.items() if k not in exclude}
    for key, value in given.items():
        if key == "type":
            continue
        sub = (*path, key)
        if key not in valid:
            if not takes_any or key in exclude:
                problems.unknown(sub, valid, inner=_inner_part_with(owner[0], given, key, path), value=value)
            continue
        if values:
            rule = param_rule(key, valid[key], hints.get(key))
            problems.value(sub, rule.problem(value) if rule is not None else None)
        check_nested(problems, owner, key, value, sub)


def _inner_part_with(registry: str, given: dict, key: str, path: tuple) -> tuple:
    """The path of a part nested in ``given`` (e.g. a MixDataset's ``dataset``) whose constructor takes ``key``;
    () when none does."""
    for name, value in given.items():
        part = PART_PARAMS.get(registry, {}).get(name)
        kind = value.get("type") if isinstance(value, dict) else None
        if part is None or not isinstance(kind, str) or kind not in REGISTRIES[part]:
            continue
        if key in accepted(REGISTRIES[part].get(kind))[0]:
            return (*path, name)
    return ()


def check_nested(problems: ConfigProblems, owner: tuple[str, str], key: str, value: Any, path: tuple) -> None:
    """A keyword argument that is itself a part, a pipeline or an option mapping: check inside it."""
    registry, type_name = owner
    if value is None:
        return
    part = PART_PARAMS.get(registry, {}).get(key)
    if part is not None:
        check_part(problems, REGISTRIES[part], value, path)
    elif key in PIPELINE_PARAMS.get(registry, ()):
        from detkit.pipeline_check import check_pipeline  # it checks detkit transforms with check_part

        check_pipeline(problems, value, path)
    options = OPTION_PARAMS.get((registry, type_name, key)) or OPTION_PARAMS.get((registry, "*", key))
    if isinstance(options, KeywordsOf) and isinstance(value, dict):
        check_kwargs(problems, options.resolve(), value, path, exclude=options.exclude)
    elif isinstance(options, Rule):
        check_section(problems, options.fields, value, path)


def check_part(problems: ConfigProblems, registry: Registry, spec: Any, path: tuple) -> None:
    """Check a registry spec ``{type: Name, **kwargs}`` against the constructor of ``Name``."""
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        problems.value(path, f"must be a {registry.name} spec, a mapping with 'type: <name>', got {show(spec)}")
        return
    name = spec["type"]
    if name not in registry:
        near = nearest(name, registry)
        hint = f" (nearest: '{near}'; registered: {', '.join(registry)})" if near else ""
        problems.add((*path, "type"), f"{dotted(path)}.type: unknown {registry.name} '{name}'{hint}")
        return
    check_kwargs(problems, registry.get(name), spec, path, owner=(registry.name, name))


def engine_sections() -> dict[str, dict[str, Rule]]:
    """The rule tables of the engine sections: ``train``, ``optimizer``, ``scheduler``."""
    from detkit.engine.defaults import TRAIN_RULES
    from detkit.engine.optim import OPTIMIZER_RULES, SCHEDULER_RULES

    return {"train": TRAIN_RULES, "optimizer": OPTIMIZER_RULES, "scheduler": SCHEDULER_RULES}


TOP_LEVEL_RULES: dict[str, Rule] = {"seed": integer(min=0), "work_dir": text(none=True)}
TOP_LEVEL = ("model", "data", "train", "optimizer", "scheduler", *TOP_LEVEL_RULES)


def check_engine(cfg: dict, problems: ConfigProblems | None = None) -> None:
    """Check the ``train``, ``optimizer`` and ``scheduler`` sections and ``seed`` of ``cfg`` (present ones)."""
    own = problems is None
    problems = problems or ConfigProblems()
    for name, rules in engine_sections().items():
        check_section(problems, rules, cfg.get(name), (name,))
    for key, rule in TOP_LEVEL_RULES.items():
        if key in cfg:
            problems.value((key,), rule.problem(cfg[key]))
    if own:
        problems.raise_if_any()


def check_config(cfg: Any, sources: Sources | None = None) -> None:
    """Check every key and value of a loaded config; raise one ``ConfigError`` naming each problem's key, the
    file that set it (``sources``, from ``detkit.config.load_config_with_sources``) and the fix.

    Sections may be missing (a ``_base_`` fragment holds one); what is present must be valid.
    """
    import detkit.data.datasets  # noqa: F401  (register every part)
    import detkit.data.transforms  # noqa: F401
    import detkit.models  # noqa: F401

    problems = ConfigProblems(sources, cfg if isinstance(cfg, dict) else None)
    if not isinstance(cfg, dict):
        raise ConfigError(f"a config must be a mapping of sections ({', '.join(TOP_LEVEL)}), got {show(cfg)}")
    detectron2 = detectron2_sections([k for k in cfg if problems.origin((k,)) != SET_ORIGIN])  # a file's, 2+
    if detectron2:
        problems.add((detectron2[0],), f"{', '.join(detectron2)}: {D2_CONFIG}")
    for key in cfg:
        if key not in TOP_LEVEL and key not in detectron2:
            _unknown_section(problems, cfg, key)
    if cfg.get("model") is not None:
        check_part(problems, DETECTORS, cfg["model"], ("model",))
    if isinstance(cfg.get("data"), str) and cfg["data"].endswith((".yaml", ".yml")):
        problems.add(
            ("data",),
            f"data is a section of the config, not a file: to train on the Ultralytics data.yaml {cfg['data']}, "
            f"give --data {cfg['data']} (the config's data sections then read it)",
        )
    else:
        check_section(problems, DATA_RULES, cfg.get("data"), ("data",), parts=DATA_SPLITS)
    check_engine(cfg, problems)
    problems.raise_if_any()


def _unknown_section(problems: ConfigProblems, cfg: dict, key: Any) -> None:
    """An unknown top-level key: detkit's form of each MMDetection / Detectron2 key in it (``load_from``,
    ``SOLVER: {MAX_ITER: 10}``), detkit's name for an Ultralytics one (``epochs``, ``imgsz``, ``device``), else
    the nearest section."""
    from detkit.peer_names import section_keys
    from detkit.ultralytics_names import translate

    peers = section_keys(str(key), cfg[key])
    for peer in peers:
        problems.add((key,), peer.line())
    found = None if peers else translate(str(key), cfg[key], cfg)
    if found is None and not peers:
        problems.unknown((key,), TOP_LEVEL, what="top-level section")
    elif found is not None:
        problems.add((key,), f"unknown top-level section '{key}' (Ultralytics' name); detkit's: {found.text()}")
