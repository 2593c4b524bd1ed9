"""Engine pieces shared by the trainer and tools/eval.py: config defaults, builders, AMP, seeding, evaluation."""
from __future__ import annotations

import copy
import difflib
import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from detkit.config import ConfigError
from detkit.engine import dist
from detkit.engine.checkpoint import load_checkpoint, model_state, preserve_rng
from detkit.engine.optim import OPTIMIZER_DEFAULTS, SCHEDULER_DEFAULTS

logger = logging.getLogger("detkit")

TRAIN_DEFAULTS: dict[str, Any] = {
    "max_epochs": 12, "eval_interval": 1, "amp": False, "grad_clip": None, "accumulate": 1, "ema": None,
    "checkpoint_interval": None, "checkpoint_iters": None, "best_metric": "bbox/AP", "log_interval": 20,
    "tensorboard": False, "max_nonfinite": 5, "sync_bn": False, "find_unused_parameters": False,
}
SECTIONS = {"train": TRAIN_DEFAULTS, "optimizer": OPTIMIZER_DEFAULTS, "scheduler": SCHEDULER_DEFAULTS}


class TrainingDiverged(RuntimeError):
    """Raised after ``train.max_nonfinite`` non-finite losses in a row."""


def resolve_config(cfg: dict) -> dict:
    """Return a copy of ``cfg`` with engine defaults filled in; an unknown engine key is an error."""
    cfg = copy.deepcopy(cfg)
    for section, defaults in SECTIONS.items():
        given = cfg.get(section) or {}
        for k in given:
            if k not in defaults:
                near = difflib.get_close_matches(k, list(defaults), n=1, cutoff=0.0)
                raise ConfigError(f"unknown key '{section}.{k}'" + (f" (nearest valid: '{section}.{near[0]}')"
                                                                    if near else ""))
        cfg[section] = {**copy.deepcopy(defaults), **given}
    cfg.setdefault("seed", 0)
    return cfg


# Builders of the other parts, imported lazily (tests may substitute them).
def build_dataset(split_cfg: dict):
    from detkit.data.build import build_dataset as _build
    return _build(split_cfg)


def build_dataloader(cfg: dict, split: str, **kwargs):
    from detkit.data.build import build_dataloader as _build
    return _build(cfg, split, **kwargs)


def build_evaluator(cfg: dict, dataset):
    from detkit.evaluation import build_evaluator as _build
    return _build(cfg, dataset)


def move_batch(batch: dict, device: torch.device) -> dict:
    """Move the tensors of a batch (``images`` and each target's tensors) to ``device``."""
    out = dict(batch)
    if isinstance(out.get("images"), torch.Tensor):
        out["images"] = out["images"].to(device, non_blocking=True)
    if "targets" in out:
        out["targets"] = [{k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                           for k, v in t.items()} for t in out["targets"]]
    return out


def resolve_amp(amp: Any, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``train.amp`` (false | true | 'fp16' | 'bf16') on ``device``; None = fp32."""
    if amp in (None, False, "false", "none", "fp32"):
        return None
    if amp not in (True, "fp16", "bf16"):
        raise ConfigError(f"train.amp={amp!r}: use false, true (fp16 on CUDA), 'fp16' or 'bf16'")
    if device.type != "cuda":
        if amp == "bf16":
            return torch.bfloat16
        logger.warning("AMP fp16 needs CUDA; training in fp32 on %s (set train.amp=bf16 for bf16 autocast "
                       "on CPU)", device)
        return None
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        raise ConfigError("train.amp=bf16: this GPU has no bf16 support; use train.amp=fp16")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (every device); optionally ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


@torch.no_grad()
def evaluate(model: nn.Module, loader, evaluator, device: torch.device,
             amp_dtype: torch.dtype | None = None) -> dict[str, float]:
    """Run ``model.predict`` over ``loader``, feed ``evaluator`` and return ``evaluator.compute()``."""
    was_training = model.training
    model.eval()
    evaluator.reset()
    with preserve_rng():
        for batch in loader:
            if batch is None:
                continue
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                preds = model.predict(move_batch(batch, device))
            evaluator.process(batch, preds)
    metrics = evaluator.compute()
    model.train(was_training)
    return {k: float(v) for k, v in metrics.items()}


def model_class_names(dataset) -> list[str]:
    """The model's classes for ``dataset``: its class names, with 'background' first for a semantic dataset
    that paints background as class 0 (``CocoDataset(sem_background=True)``)."""
    names = list(dataset.class_names)
    return ["background", *names] if getattr(dataset, "sem_background", False) else names


def evaluate_checkpoint(cfg: dict, checkpoint: str | Path, device: str | None = None):
    """Evaluate ``checkpoint`` on ``cfg['data']['val']``; return ``(metrics, evaluator)``.

    The model gets the class names saved in the checkpoint; they must match the validation dataset's.
    """
    from detkit.models.build import build_model
    if not (cfg.get("data") or {}).get("val"):
        raise ConfigError("the config has no data.val section to evaluate on")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    ckpt = load_checkpoint(checkpoint)
    val_set = build_dataset(cfg["data"]["val"])
    val_names = model_class_names(val_set)
    names = list((ckpt.get("meta") or {}).get("class_names") or val_names)
    if len(names) != len(val_names):
        raise ValueError(f"{checkpoint}: the model has {len(names)} classes, data.val has "
                         f"{len(val_names)} ({', '.join(val_names[:5])}...)")
    model = build_model(cfg, class_names=names).to(dev)
    try:
        model.load_state_dict(model_state(ckpt))
    except RuntimeError as e:
        raise ValueError(f"{checkpoint}: weights do not fit the config's model: {str(e).splitlines()[0]} "
                         "(is it the config the checkpoint was trained with?)") from e
    loader = build_dataloader(cfg, "val", distributed=dist.is_dist(), seed=int(cfg.get("seed") or 0),
                              dataset=val_set)
    evaluator = build_evaluator(cfg, val_set)
    amp = resolve_amp((cfg.get("train") or {}).get("amp", False), dev)
    return evaluate(model, loader, evaluator, dev, amp), evaluator


def set_sampler_epoch(loader, epoch: int, start_iter: int) -> bool:
    """Tell the loader's samplers the epoch and first batch; False when they cannot skip batches."""
    skipped = start_iter == 0
    for s in (getattr(loader, "batch_sampler", None), getattr(loader, "sampler", None)):
        if hasattr(s, "set_epoch"):
            s.set_epoch(epoch)
        if hasattr(s, "set_start_iter"):
            s.set_start_iter(start_iter)
            skipped = True
    return skipped
