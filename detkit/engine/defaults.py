"""Engine config defaults (train, optimizer, scheduler sections), the rules their values obey, and their resolution."""

from __future__ import annotations

import copy
from typing import Any

from detkit.config_rules import Rule, boolean, choice, integer, number, section, text
from detkit.engine.optim import OPTIMIZER_DEFAULTS, OPTIMIZER_RULES, SCHEDULER_DEFAULTS, SCHEDULER_RULES

TRAIN_DEFAULTS: dict[str, Any] = {
    "max_epochs": 12,
    "max_iters": None,
    "eval_interval": None,
    "amp": False,
    "grad_clip": None,
    "accumulate": 1,
    "ema": None,
    "checkpoint_interval": None,
    "checkpoint_iters": None,
    "best_metric": "bbox/AP",
    "eval_max_dets": 100,
    "patience": 0,
    "log_interval": 20,
    "tensorboard": False,
    "max_nonfinite": 5,
    "sync_bn": "auto",
    "global_batch": True,
    "find_unused_parameters": False,
    "compile": False,
}
# What each train key may hold (docs/configs.md); every key of TRAIN_DEFAULTS has a rule and no other key does.
TRAIN_RULES: dict[str, Rule] = {
    "max_epochs": integer(min=1),
    "max_iters": integer(min=1, none=True),  # iteration-based run: wins over max_epochs (docs/training.md)
    "eval_interval": integer(min=1, none=True),  # epochs, or iterations with max_iters; null: auto
    "amp": choice(False, True, "fp16", "bf16", "fp32", none=True),
    "grad_clip": number(above=0, none=True),
    "accumulate": integer(min=1),
    "ema": section({"decay": number(0, 1), "tau": number(min=0)}, none=True),
    "checkpoint_interval": integer(min=1, none=True),
    "checkpoint_iters": integer(min=1, none=True),
    "best_metric": text(),
    "eval_max_dets": integer(min=1),  # detections per image that COCO AP counts (pycocotools' maxDets; COCO: 100)
    "patience": integer(min=0),
    "log_interval": integer(min=1),
    "tensorboard": boolean(),
    "max_nonfinite": integer(min=1),
    "sync_bn": choice("auto", True, False),
    "global_batch": boolean(),
    "find_unused_parameters": boolean(),
    "compile": boolean(),
}
SECTIONS = {"train": TRAIN_DEFAULTS, "optimizer": OPTIMIZER_DEFAULTS, "scheduler": SCHEDULER_DEFAULTS}
SECTION_RULES = {"train": TRAIN_RULES, "optimizer": OPTIMIZER_RULES, "scheduler": SCHEDULER_RULES}


def resolve_config(cfg: dict) -> dict:
    """Return a copy of ``cfg`` with engine defaults filled in; an unknown engine key or a bad value (a float
    ``max_epochs``, ``accumulate: 0``, ...) is a ``ConfigError`` that names the key."""
    from detkit.config_check import check_engine

    check_engine(cfg)
    cfg = copy.deepcopy(cfg)
    for section_name, defaults in SECTIONS.items():
        given = cfg.get(section_name) or {}
        cfg[section_name] = {**copy.deepcopy(defaults), **given}
    cfg.setdefault("seed", 0)
    return cfg
