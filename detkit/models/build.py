"""Build a detector from a config; ``num_classes`` may come from the training dataset."""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence

from torch import nn

from detkit.registry import DETECTORS


def resolve_num_classes(model_cfg: dict, class_names: Sequence[str] | None) -> int:
    """Return ``model.num_classes``, taken from ``class_names`` when null and checked against them."""
    n = model_cfg.get("num_classes")
    if n is None:
        if class_names is None:
            raise ValueError(
                "model.num_classes is null and no dataset class names are known: "
                "set model.num_classes in the config or give the training dataset"
            )
        return len(class_names)
    if class_names is not None and int(n) != len(class_names):
        raise ValueError(
            f"model.num_classes is {n} but the dataset has {len(class_names)} categories "
            f"({', '.join(class_names[:10])}{', ...' if len(class_names) > 10 else ''}); "
            "set model.num_classes to null to take it from the dataset"
        )
    return int(n)


def build_model(cfg: dict, class_names: Sequence[str] | None = None) -> nn.Module:
    """Build ``cfg['model']`` through the DETECTORS registry.

    ``num_classes`` is filled from ``class_names`` when the config leaves it null; the detector gets
    ``class_names`` (default ``class_0 ... class_{C-1}``). Given a whole config (with a ``data`` section),
    the model carries it as ``model.cfg``, so its test pipeline goes with it: ``detkit.predict`` on a model
    from ``build_model(cfg)`` resizes as one from ``init_model(cfg)`` does.
    """
    import detkit.models  # noqa: F401  (registers every part)

    if not isinstance(cfg, dict):
        hint = ": read a file with detkit.load_config(path) first" if isinstance(cfg, (str, os.PathLike)) else ""
        raise TypeError(f"build_model takes a config dict, got {type(cfg).__name__}{hint}")
    spec = copy.deepcopy(cfg.get("model", cfg))
    num_classes = resolve_num_classes(spec, class_names)
    spec["num_classes"] = num_classes
    names = list(class_names) if class_names is not None else spec.pop("class_names", None)
    spec.pop("class_names", None)
    if names is None:
        names = [f"class_{i}" for i in range(num_classes)]
    spec["class_names"] = names
    model = DETECTORS.build(spec)
    if "model" in cfg and "data" in cfg:
        model.cfg = copy.deepcopy(cfg)
    return model
