"""Check a transform pipeline in a config: detkit transforms against their constructors, albumentations
transforms (and compositions such as ``OneOf``) by name and keyword, and ``BboxParams`` (part of
``detkit.config_check``, which calls :func:`check_pipeline` for every pipeline keyword of a part).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from detkit.config_check import ConfigProblems, check_kwargs, check_part, dotted, nearest
from detkit.config_rules import show
from detkit.registry import TRANSFORMS

# albumentations.BboxParams keys that detkit fixes (format pascal_voc, its label fields, clip=True)
BBOX_FIXED = ("format", "label_fields", "clip")


def _albumentations() -> Any:
    import detkit.data.transforms  # noqa: F401  (sets albumentations' no-network switch, registers transforms)

    return importlib.import_module("albumentations")


def albumentations_transform(name: str) -> type | None:
    """The albumentations transform (or composition such as ``OneOf``) called ``name``, or None."""
    A = _albumentations()
    from albumentations.core.composition import BaseCompose
    from albumentations.core.transforms_interface import BasicTransform

    cls = getattr(A, name, None)
    ok = inspect.isclass(cls) and issubclass(cls, (BasicTransform, BaseCompose)) and not name.startswith("_")
    return cls if ok else None


def transform_names() -> list[str]:
    """detkit transforms, albumentations transforms and ``BboxParams``: every name a pipeline may use."""
    A = _albumentations()
    return [*TRANSFORMS, "BboxParams", *(n for n in vars(A) if albumentations_transform(n) is not None)]


def check_pipeline(problems: ConfigProblems, specs: Any, path: tuple) -> None:
    """Check a transform pipeline: a list of ``{type: Name, ...}`` (detkit, albumentations or ``BboxParams``)."""
    if callable(specs):
        return
    if not isinstance(specs, list):
        problems.value(path, f"must be a list of transforms ({{type: Name, ...}}), got {show(specs)}")
        return
    for i, spec in enumerate(specs):
        check_transform(problems, spec, (*path, i))


def check_transform(problems: ConfigProblems, spec: Any, path: tuple) -> None:
    """Check one pipeline entry: keys against the transform's constructor (albumentations: keys only, it
    validates its own values when built)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        problems.value(path, f"must be a transform, a mapping with 'type: <name>', got {show(spec)}")
        return
    name = spec["type"]
    if name in TRANSFORMS:
        check_part(problems, TRANSFORMS, spec, path)
        return
    if name == "BboxParams":
        bbox = _albumentations().BboxParams
        check_kwargs(problems, bbox, spec, path, exclude=BBOX_FIXED, values=False)
        return
    cls = albumentations_transform(name)
    if cls is None:
        near = nearest(name, transform_names())
        problems.add(
            (*path, "type"),
            f"{dotted(path)}.type: unknown transform '{name}', neither a detkit transform ({', '.join(TRANSFORMS)}) "
            f"nor an albumentations one (nearest: '{near}')",
        )
        return
    given = {k: v for k, v in spec.items() if k != "strict"}  # albumentations' own validation switch
    check_kwargs(problems, cls, given, path, values=False)
    children = spec.get("transforms")
    if isinstance(children, list):
        for j, child in enumerate(children):
            check_transform(problems, child, (*path, "transforms", j))
