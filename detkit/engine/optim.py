"""Optimizer with parameter groups (no decay on norms / biases, per-module LR multipliers) and LR schedules.

The learning rate is a pure function of the iteration (``LRSchedule.factor(it)``), so resuming or
extending a run reproduces the curve exactly; nothing is accumulated step by step.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from detkit.config_rules import Rule, boolean, choice, integer, list_of, mapping, number, show

NORM_TYPES = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    nn.modules.instancenorm._InstanceNorm,
)

OPTIMIZER_DEFAULTS: dict[str, Any] = {
    "type": "SGD",
    "lr": 0.02,
    "momentum": 0.9,
    "nesterov": False,
    "weight_decay": 1e-4,
    "norm_decay": 0.0,
    "bias_decay": 0.0,
    "base_batch_size": 16,
    "lr_mult": {},
    "betas": [0.9, 0.999],
    "eps": 1e-8,
}
SCHEDULER_DEFAULTS: dict[str, Any] = {
    "type": "multistep",
    "milestones": [8, 11],
    "gamma": 0.1,
    "warmup_iters": 500,
    "warmup_ratio": 0.001,
    "warmup_max_share": 0.2,
    "min_lr_ratio": 0.0,
    "warmup_epochs": 0.0,
    "warmup_bias_lr": None,
    "warmup_momentum": None,
}
# What each key may hold (docs/configs.md): a rule for every default key, and no other key is accepted.
OPTIMIZER_RULES: dict[str, Rule] = {
    "type": choice("SGD", "AdamW", "Adam"),
    "lr": number(above=0),
    "momentum": number(0, 1),
    "nesterov": boolean(),
    "weight_decay": number(min=0),
    "norm_decay": number(min=0),
    "bias_decay": number(min=0),
    "base_batch_size": integer(min=1, none=True),
    "lr_mult": mapping(number(min=0), none=True),
    "betas": list_of(number(0, 1), length=2),
    "eps": number(above=0),
}
SCHEDULER_RULES: dict[str, Rule] = {
    "type": choice("multistep", "cosine", "linear", "constant"),
    "milestones": list_of(integer(min=0), none=True),
    "gamma": number(above=0),
    "warmup_iters": integer(min=0, none=True),
    "warmup_ratio": number(0, 1),
    "warmup_max_share": number(0, 1, none=True),
    "min_lr_ratio": number(0, 1),
    "warmup_epochs": number(min=0, none=True),
    "warmup_bias_lr": number(min=0, none=True),
    "warmup_momentum": number(0, 1, none=True),
}


# keys that only some types read: (section, key) -> (the types that read it, the value that means "unused")
TYPE_KEYS: dict[tuple[str, str], tuple[tuple[str, ...], tuple]] = {
    ("optimizer", "momentum"): (("SGD",), (OPTIMIZER_DEFAULTS["momentum"],)),
    ("optimizer", "nesterov"): (("SGD",), (False,)),
    ("optimizer", "betas"): (("Adam", "AdamW"), (OPTIMIZER_DEFAULTS["betas"],)),
    ("optimizer", "eps"): (("Adam", "AdamW"), (OPTIMIZER_DEFAULTS["eps"],)),
    ("scheduler", "milestones"): (("multistep",), ([], None, SCHEDULER_DEFAULTS["milestones"])),
    ("scheduler", "gamma"): (("multistep",), (SCHEDULER_DEFAULTS["gamma"],)),
    ("scheduler", "min_lr_ratio"): (("cosine", "linear"), (SCHEDULER_DEFAULTS["min_lr_ratio"],)),
}


def unused_type_keys(cfg: dict) -> list[tuple[tuple[str, str], str]]:
    """``(key path, message)`` for each optimizer / scheduler key set to a value that the section's ``type``
    never reads (``momentum: 0.5`` with AdamW, ``milestones: [1, 2]`` with cosine); ``scheduler.warmup_momentum``
    counts as an SGD key (only SGD has a momentum to warm up)."""
    out = []
    types = {
        s: (cfg.get(s) or {}).get("type", d["type"])
        for s, d in (("optimizer", OPTIMIZER_DEFAULTS), ("scheduler", SCHEDULER_DEFAULTS))
    }
    rules = {**TYPE_KEYS, ("scheduler", "warmup_momentum"): (("SGD",), (None,))}
    for (section, key), (readers, unused) in rules.items():
        owner = "optimizer" if key == "warmup_momentum" else section
        value = (cfg.get(section) or {}).get(key, unused[0]) if isinstance(cfg.get(section), dict) else unused[0]
        if types[owner] in readers or any(value == u for u in unused):
            continue
        out.append(
            (
                (section, key),
                f"{section}.{key}: {show(value)} is not used by {owner} type {types[owner]} (only by "
                f"{' / '.join(readers)}); remove it (or set it to {show(unused[0])}), or choose {owner}.type "
                f"{readers[0]}",
            )
        )
    return out


def _lr_mult(name: str, lr_mult: dict[str, float]) -> float:
    """Multiplier of the longest ``lr_mult`` prefix that matches the dotted parameter name."""
    best, mult = -1, 1.0
    for prefix, m in lr_mult.items():
        if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
            best, mult = len(prefix), float(m)
    return mult


def param_groups(model: nn.Module, cfg: dict) -> list[dict]:
    """Split trainable parameters into groups by (weight decay, LR multiplier).

    Norm-layer weights and biases get ``norm_decay``, other biases ``bias_decay``, the rest
    ``weight_decay``; ``lr_mult: {backbone: 0.1}`` scales the LR of every parameter under ``backbone.``.
    Biases (of any layer) form groups of their own (``bias: True``) for the bias warm-up of
    :class:`LRSchedule`. Each group carries ``lr_mult``, ``bias`` and ``param_names`` (for tests and logs).
    """
    groups: dict[tuple[float, float], dict] = {}
    seen: set[int] = set()
    lr_mult = cfg.get("lr_mult") or {}
    _check_lr_mult(model, lr_mult)
    for mod_name, module in model.named_modules():
        is_norm = isinstance(module, NORM_TYPES)
        for p_name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if is_norm:
                wd = cfg["norm_decay"]
            elif p_name == "bias":
                wd = cfg["bias_decay"]
            else:
                wd = cfg["weight_decay"]
            key = (float(wd), _lr_mult(full, lr_mult), p_name == "bias")
            g = groups.setdefault(
                key, {"params": [], "param_names": [], "weight_decay": key[0], "lr_mult": key[1], "bias": key[2]}
            )
            g["params"].append(p)
            g["param_names"].append(full)
    return list(groups.values())


def _check_lr_mult(model: nn.Module, lr_mult: dict[str, float]) -> None:
    """Each ``lr_mult`` prefix must name a part of the model (a ValueError naming it and the nearest names)."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    for prefix in lr_mult:
        if not any(n == prefix or n.startswith(f"{prefix}.") for n in names):
            parts = sorted({n.rsplit(".", 1)[0] for n in names} | {n.split(".")[0] for n in names})
            near = difflib.get_close_matches(str(prefix), parts, n=3)
            raise ValueError(
                f"optimizer.lr_mult: '{prefix}' is the prefix of no trainable parameter, so its multiplier would "
                f"apply to nothing (nearest: {', '.join(near) or 'none'}; the model's parts: "
                f"{', '.join(sorted({n.split('.')[0] for n in names}))})"
            )


def scaled_lr(cfg: dict, total_batch: int) -> float:
    """Linear scaling rule: ``lr * total_batch / base_batch_size`` (``base_batch_size: null`` = no scaling)."""
    base = cfg.get("base_batch_size")
    return float(cfg["lr"]) * (total_batch / float(base) if base else 1.0)


def build_optimizer(model: nn.Module, cfg: dict, total_batch: int = 16) -> torch.optim.Optimizer:
    """Build SGD / AdamW / Adam over :func:`param_groups`; each group's ``initial_lr`` = scaled lr x lr_mult."""
    cfg = {**OPTIMIZER_DEFAULTS, **cfg}
    lr = scaled_lr(cfg, total_batch)
    groups = param_groups(model, cfg)
    for g in groups:
        g["lr"] = g["initial_lr"] = lr * g["lr_mult"]
    kind = cfg["type"]
    if kind == "SGD":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg["momentum"], nesterov=bool(cfg["nesterov"]))
    if kind in ("AdamW", "Adam"):
        cls = torch.optim.AdamW if kind == "AdamW" else torch.optim.Adam
        return cls(groups, lr=lr, betas=tuple(cfg["betas"]), eps=cfg["eps"])
    raise ValueError(f"optimizer.type '{kind}' is not supported; use SGD, AdamW or Adam")


class LRSchedule:
    """Per-iteration LR factor = warm-up factor x main schedule factor, a pure function of the iteration.

    Args:
        type: ``multistep`` (x ``gamma`` at each epoch in ``milestones``), ``cosine`` or ``linear``
            (from 1 at the end of the warm-up down to ``min_lr_ratio`` at the last iteration), ``constant``.
        max_iters: iterations of the whole run; iters_per_epoch: to turn milestones into iterations.
        warmup_iters: linear warm-up from ``warmup_ratio`` to 1, capped to ``warmup_max_share`` of the run.
        warmup_epochs: warm-up given in epochs (YOLO recipes); the longer of the two counts, then the cap.
        warmup_bias_lr: during the warm-up, bias groups start at this LR and go linearly down (or up) to the
            scheduled LR (YOLO: 0.1 with SGD); None: biases warm up like the rest.
        warmup_momentum: during the warm-up, SGD momentum goes linearly from this value to the optimizer's
            (YOLO: 0.8); None: constant momentum.
    """

    def __init__(
        self,
        type: str = "multistep",
        max_iters: int = 1,
        iters_per_epoch: int = 1,
        milestones: Iterable[int] = (),
        gamma: float = 0.1,
        warmup_iters: int = 0,
        warmup_ratio: float = 0.001,
        warmup_max_share: float = 0.2,
        min_lr_ratio: float = 0.0,
        warmup_epochs: float = 0.0,
        warmup_bias_lr: float | None = None,
        warmup_momentum: float | None = None,
    ):
        if type not in ("multistep", "cosine", "linear", "constant"):
            raise ValueError(f"scheduler.type '{type}' is not supported; use multistep, cosine, linear or constant")
        self.type, self.max_iters, self.iters_per_epoch = type, max(int(max_iters), 1), int(iters_per_epoch)
        self.milestones = sorted(int(m) for m in (milestones or []))
        self.milestone_iters = [m * self.iters_per_epoch for m in self.milestones]
        self.gamma, self.min_lr_ratio = float(gamma), float(min_lr_ratio)
        self.warmup_ratio = float(warmup_ratio)
        self.warmup_bias_lr = None if warmup_bias_lr is None else float(warmup_bias_lr)
        self.warmup_momentum = None if warmup_momentum is None else float(warmup_momentum)
        wanted = max(int(warmup_iters or 0), int(round(float(warmup_epochs or 0) * self.iters_per_epoch)))
        cap = int(float(warmup_max_share) * self.max_iters) if warmup_max_share is not None else wanted
        self.warmup_iters = max(0, min(wanted, cap))

    @classmethod
    def from_config(cls, cfg: dict, max_epochs: int, iters_per_epoch: int, max_iters: int | None = None) -> LRSchedule:
        """Build from the ``scheduler`` config section for a run of ``max_epochs`` epochs, or of ``max_iters``
        iterations when given (``train.max_iters``: milestones and ``warmup_epochs`` still count epochs of
        ``iters_per_epoch``, the warm-up cap is a share of ``max_iters``)."""
        cfg = {**SCHEDULER_DEFAULTS, **cfg}
        total = int(max_iters) if max_iters else max_epochs * iters_per_epoch
        return cls(max_iters=total, iters_per_epoch=iters_per_epoch, **cfg)

    def main_factor(self, it: int) -> float:
        """Schedule factor at iteration ``it`` without warm-up."""
        if self.type == "multistep":
            return self.gamma ** sum(1 for m in self.milestone_iters if it >= m)
        span = max(self.max_iters - self.warmup_iters, 1)  # decay starts when the warm-up ends
        t = min(max(it - self.warmup_iters, 0), span) / span
        if self.type == "cosine":
            return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
        if self.type == "linear":
            return 1.0 - (1.0 - self.min_lr_ratio) * t
        return 1.0

    def factor(self, it: int) -> float:
        """LR factor at iteration ``it`` (0-based count of iterations done)."""
        f = self.main_factor(it)
        if it < self.warmup_iters:
            alpha = it / self.warmup_iters
            f *= self.warmup_ratio * (1 - alpha) + alpha
        return f

    def apply(self, optimizer: torch.optim.Optimizer, it: int) -> float:
        """Set every group's LR (and warm-up momentum) for iteration ``it``; return the LR of plain groups."""
        f = self.factor(it)
        warm = it < self.warmup_iters
        alpha = it / self.warmup_iters if warm else 1.0
        for g in optimizer.param_groups:
            g["lr"] = g["initial_lr"] * f
            if warm and self.warmup_bias_lr is not None and g.get("bias"):
                g["lr"] = (1 - alpha) * self.warmup_bias_lr + alpha * g["initial_lr"] * self.main_factor(it)
            if self.warmup_momentum is not None and "momentum" in g:
                base = g.setdefault("initial_momentum", g["momentum"])
                g["momentum"] = (1 - alpha) * self.warmup_momentum + alpha * base
        plain = [
            g for g in optimizer.param_groups if g.get("lr_mult", 1.0) == 1.0 and not g.get("bias")
        ] or optimizer.param_groups
        return plain[0]["lr"]

    def state_dict(self) -> dict:
        """Plain description of the schedule (saved in checkpoints to report changes on resume)."""
        return {
            "type": self.type,
            "max_iters": self.max_iters,
            "iters_per_epoch": self.iters_per_epoch,
            "milestones": list(self.milestones),
            "gamma": self.gamma,
            "warmup_iters": self.warmup_iters,
            "warmup_ratio": self.warmup_ratio,
            "min_lr_ratio": self.min_lr_ratio,
            "warmup_bias_lr": self.warmup_bias_lr,
            "warmup_momentum": self.warmup_momentum,
        }

    @classmethod
    def from_state(cls, state: dict) -> LRSchedule:
        """Rebuild a schedule saved by :meth:`state_dict`."""
        s = dict(state)
        return cls(warmup_max_share=None, **s)

    def compare(self, old: LRSchedule, base_lr: float, at_iter: int) -> list[str]:
        """Lines comparing ``old`` with this schedule (LR at the resume point, milestones, end); [] if equal."""
        if old.state_dict() == self.state_dict():
            return []
        lines = [
            f"LR schedule changed on resume (old -> new): max_iters {old.max_iters} -> {self.max_iters}, "
            f"milestones (epochs) {old.milestones} -> {self.milestones}, type {old.type} -> {self.type}"
        ]
        points = sorted({at_iter, *old.milestone_iters, *self.milestone_iters, old.max_iters - 1, self.max_iters - 1})
        for it in points:
            if it < at_iter:
                continue
            o = f"{base_lr * old.factor(it):.6g}" if it < old.max_iters else "(ended)"
            lines.append(f"  iter {it:>8d}: lr old {o:>12s}  new {base_lr * self.factor(it):.6g}")
        return lines
