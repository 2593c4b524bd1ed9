"""Engine config defaults (train, optimizer, scheduler sections) and their resolution."""

from __future__ import annotations

import copy
import difflib
from typing import Any

from detkit.config import ConfigError
from detkit.engine.optim import OPTIMIZER_DEFAULTS, SCHEDULER_DEFAULTS

TRAIN_DEFAULTS: dict[str, Any] = {
    "max_epochs": 12,
    "eval_interval": 1,
    "amp": False,
    "grad_clip": None,
    "accumulate": 1,
    "ema": None,
    "checkpoint_interval": None,
    "checkpoint_iters": None,
    "best_metric": "bbox/AP",
    "log_interval": 20,
    "tensorboard": False,
    "max_nonfinite": 5,
    "sync_bn": False,
    "find_unused_parameters": False,
}
SECTIONS = {"train": TRAIN_DEFAULTS, "optimizer": OPTIMIZER_DEFAULTS, "scheduler": SCHEDULER_DEFAULTS}


def resolve_config(cfg: dict) -> dict:
    """Return a copy of ``cfg`` with engine defaults filled in; an unknown engine key is an error."""
    cfg = copy.deepcopy(cfg)
    for section, defaults in SECTIONS.items():
        given = cfg.get(section) or {}
        for k in given:
            if k not in defaults:
                near = difflib.get_close_matches(k, list(defaults), n=1, cutoff=0.0)
                raise ConfigError(
                    f"unknown key '{section}.{k}'" + (f" (nearest valid: '{section}.{near[0]}')" if near else "")
                )
        cfg[section] = {**copy.deepcopy(defaults), **given}
    cfg.setdefault("seed", 0)
    return cfg
