"""One training step of the trainer: a micro-batch's forward and backward, the optimizer step at accumulation
boundaries, the non-finite loss guard, and the step's logging (progress, loss history, TensorBoard).

Functions of a :class:`~detkit.engine.trainer.Trainer` ``tr`` (its state: model, optimizer, schedule, counters);
the trainer's ``_train_step`` / ``_optimizer_step`` methods call them, so tests can hook those methods.
"""

from __future__ import annotations

import contextlib
import logging

import torch
from torch import nn

from detkit.engine import dist
from detkit.engine.logger import Progress
from detkit.engine.loss_watch import count_objects
from detkit.engine.runtime import TrainingDiverged, join_global_batch, move_batch
from detkit.utils.amp import autocast

logger = logging.getLogger("detkit")


def train_step(tr, batch: dict | None) -> bool:
    """One micro-batch: forward, backward, and at accumulation boundaries the optimizer step.

    Returns True at an accumulation boundary (a consistent point to stop or checkpoint).
    """
    acc = int(tr.tcfg["accumulate"])
    n = tr.iter_in_epoch + 1
    # an epoch's last batch ends an accumulation group, as does an iteration-based run's evaluation / checkpoint
    boundary = n % acc == 0 or n == tr.iters_per_epoch or tr.length.is_point(tr.iter + 1)
    lr = tr.schedule.apply(tr.optimizer, tr.iter)
    tr._lr = lr
    losses, bad = {}, []
    any_missing = False
    if tr.tcfg["global_batch"]:  # every rank runs the step as one process over the global batch, or none
        step = dict(seed=tr.cfg["seed"], iteration=tr.iter, rank=tr.rank, world=tr.world)
        step["batch_size"] = int(tr.cfg["data"].get("batch_size", 1))
        batch, any_missing = join_global_batch(batch, step, tr.device)
    sync = tr.ddp.no_sync() if (tr.ddp is not None and not boundary) else contextlib.nullcontext()
    with sync:
        if batch is not None and not any_missing:
            with autocast(tr.device.type, tr.amp_dtype):
                losses = (tr.ddp or tr.model)(move_batch(batch, tr.device))
            bad = [k for k, v in losses.items() if not torch.isfinite(v).all()]
        # a None batch: every sample of it was left out (data.batch_size of them, fewer in a last batch)
        dropped = batch.get("num_skipped", 0) if batch is not None else tr.cfg["data"].get("batch_size", 1)
        objects = count_objects(batch) if losses else 0  # (the collapse watch: losses of batches with objects)
        flags = torch.tensor([float(bool(bad)), float(batch is None), float(tr._signals.requested), dropped, objects])
        flags = dist.all_reduce_sum(flags.to(tr.device)).cpu()
        tr.skipped_samples += int(flags[3])
        skip = bool(flags[0] or flags[1])
        if not skip:
            total = sum(losses.values())
            tr.scaler.scale(total / acc).backward()
    if flags[2] and not tr.interrupted:
        tr.interrupted = tr._signals.signame or "a signal on another rank"
    tr._group_bad = tr._group_bad or skip
    if flags[0]:
        count_nonfinite(tr, bad)
    elif batch is not None and not any_missing:
        tr.nonfinite = 0
        tr.losses.add(losses)
        tr.loss_watch.add(int(flags[4]))
    if boundary:
        tr._optimizer_step()
    return boundary


def count_nonfinite(tr, bad: list[str]) -> None:
    """Count a skipped step (non-finite ``bad`` losses on some rank); too many in a row raise TrainingDiverged."""
    tr.nonfinite += 1
    names = sorted({k for names in dist.all_gather_object(bad) for k in names})
    logger.warning(
        "non-finite loss (%s) at iteration %d: step skipped (%d in a row, limit %d)",
        ", ".join(names),
        tr.iter,
        tr.nonfinite,
        tr.tcfg["max_nonfinite"],
    )
    if tr.nonfinite >= int(tr.tcfg["max_nonfinite"]):
        latest = tr.work_dir / "latest.pth"
        where = (
            f"the last good checkpoint is {latest} (resume from it with a lower lr)"
            if latest.is_file()
            else "no checkpoint was written yet (start again with --exist-ok or another --work-dir)"
        )
        raise TrainingDiverged(
            f"training stopped: {tr.nonfinite} non-finite losses in a row (last: {', '.join(names)}) "
            f"at epoch {tr.epoch + 1}, iteration {tr.iter}; {where}. Lower optimizer.lr, set train.grad_clip, or "
            "check the data"
        )


def optimizer_step(tr) -> None:
    """Clip, step, update the scaler and the EMA; a group with a skipped micro-batch only drops its gradients."""
    if tr._group_bad:
        tr.optimizer.zero_grad(set_to_none=True)
        tr._group_bad = False
        return
    clip = tr.tcfg["grad_clip"]
    if clip:
        tr.scaler.unscale_(tr.optimizer)
        norm = nn.utils.clip_grad_norm_(tr.model.parameters(), float(clip))
        if not torch.isfinite(norm) and not tr.scaler.is_enabled():
            tr.optimizer.zero_grad(set_to_none=True)
            count_nonfinite(tr, ["grad_norm"])
            return
    tr.scaler.step(tr.optimizer)
    tr.scaler.update()
    tr.optimizer.zero_grad(set_to_none=True)
    if tr.ema:
        tr.ema.update(tr.model)


def log_step(tr, progress: Progress) -> None:
    """Advance the progress; every ``train.log_interval`` iterations record the mean losses and the LR.

    The log line and the record show the losses averaged over the processes (under ``train.global_batch`` a
    process's own losses are rescaled shares that only mean something summed); between log points the bar
    shows the last averaged values (a single process: its running window)."""
    interval = max(1, int(tr.tcfg["log_interval"]))
    remaining = tr.schedule.max_iters - tr.iter
    if tr.iter % interval and tr.iter_in_epoch != tr.iters_per_epoch and not tr.length.is_point(tr.iter):
        shown = tr.losses.window_means() if tr.world == 1 else tr._shown_losses
        progress.update(shown, tr._lr, tr.iter, remaining, line=False)
        return
    reduced = tr.losses.reduce_window(tr.device)
    tr.loss_watch.check(reduced, tr)  # every loss 0 while the batches held objects: a warning, once
    tr._shown_losses = reduced
    progress.update(reduced, tr._lr, tr.iter, remaining, line=True)
    if tr.main and reduced:
        tr.record.add_losses(tr.iter, tr.iter / tr.iters_per_epoch, tr._lr, reduced)
        if tr.tb:
            for k, v in reduced.items():
                tr.tb.add_scalar(f"train/{k}", v, tr.iter)
            tr.tb.add_scalar("train/lr", tr._lr, tr.iter)
