"""Evaluation loops: a model over a loader, and a checkpoint on a config's data.val (tools/eval.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from detkit.config import ConfigError
from detkit.engine import builders, dist
from detkit.engine.checkpoint import load_checkpoint, model_state, preserve_rng
from detkit.engine.logger import progress_bar, progress_enabled
from detkit.engine.runtime import move_batch, resolve_amp
from detkit.utils.amp import autocast
from detkit.utils.checkpoint import CheckpointMismatchError, load_model_state
from detkit.utils.device import parse_device


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader,
    evaluator,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    progress: bool | None = None,
) -> dict[str, float]:
    """Run ``model.predict`` over ``loader``, feed ``evaluator`` and return ``evaluator.compute()``.

    ``progress``: a tqdm bar with ETA (default: on the main process when stdout and stderr are terminals).
    """
    was_training = model.training
    model.eval()
    evaluator.reset()
    if progress is None:
        progress = progress_enabled(dist.is_main_process())
    total = len(loader) if hasattr(loader, "__len__") else None
    try:
        with preserve_rng():
            for batch in progress_bar(loader, total=total, desc="evaluating", enabled=progress, unit="batch"):
                if batch is None:
                    continue
                with autocast(device.type, amp_dtype):
                    preds = model.predict(move_batch(batch, device))
                evaluator.process(batch, preds)
        metrics = evaluator.compute()
    finally:
        model.train(was_training)
    return {k: float(v) for k, v in metrics.items()}


def evaluate_checkpoint(
    cfg: dict, checkpoint: str | Path, device: str | None = None, wrap: Callable[[nn.Module], nn.Module] | None = None
):
    """Evaluate ``checkpoint`` on ``cfg['data']['val']``; return ``(metrics, evaluator)``.

    ``wrap(model)`` replaces the loaded model before the evaluation (tools/eval.py's ``--tta`` / ``--ensemble``
    evaluate ``detkit.inference.ensemble.Ensemble([model, ...])``).

    The model gets the class names saved in the checkpoint: another count than data.val's is a
    ``CheckpointMismatchError``, the same names in another order (or other names) a
    ``CategoryMismatchWarning`` before the evaluation; weights that do not fit the config's model are a
    ``CheckpointMismatchError`` counting the tensors that fit.
    """
    from detkit.evaluation.checks import class_names_mismatch, warn_mismatch
    from detkit.models.backbones.init_weights import without_init_checkpoint
    from detkit.models.build import build_model

    val_cfg = (cfg.get("data") or {}).get("val")
    if not val_cfg:
        raise ConfigError("the config has no data.val section to evaluate on")
    dev = parse_device(device)
    ckpt = load_checkpoint(checkpoint)
    val_set = builders.build_dataset(val_cfg)
    val_names = builders.model_class_names(val_set)
    names = list((ckpt.get("meta") or {}).get("class_names") or val_names)
    where = f"data.val ({val_cfg.get('ann_file') or val_cfg.get('img_dir') or val_cfg.get('type')})"
    message = class_names_mismatch(names, val_names, f"checkpoint {checkpoint}", where)
    if message and len(names) != len(val_names):
        raise CheckpointMismatchError(message)
    model = build_model(without_init_checkpoint(cfg), class_names=names).to(dev)  # weights: the checkpoint's
    load_model_state(
        model,
        model_state(ckpt),
        str(checkpoint),
        hint="Use the config the checkpoint was trained with (a run keeps it as config.yaml next to its checkpoints)",
    )
    if message:  # after the weights load: a checkpoint that does not fit gets its error alone
        warn_mismatch(message)
    loader = builders.build_dataloader(
        cfg,
        "val",
        distributed=dist.is_dist(),
        seed=int(cfg.get("seed") or 0),
        dataset=val_set,
        pin_memory=dev.type == "cuda",
    )
    evaluator = builders.build_evaluator(cfg, val_set)
    amp = resolve_amp((cfg.get("train") or {}).get("amp", False), dev)
    if wrap is not None:
        model = wrap(model)
    return evaluate(model, loader, evaluator, dev, amp), evaluator
