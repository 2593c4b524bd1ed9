"""The epoch-based trainer: DDP, AMP, gradient accumulation, EMA, exact resume, evaluation, checkpoints."""

from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

import detkit
from detkit.config import dump_config
from detkit.engine import builders, dist
from detkit.engine.checkpoint import (
    get_rng_state,
    load_checkpoint,
    load_weights,
    model_state,
    preserve_rng,
    save_checkpoint,
    set_rng_state,
)
from detkit.engine.defaults import resolve_config
from detkit.engine.ema import ModelEMA
from detkit.engine.evaluate import evaluate
from detkit.engine.logger import Progress, RunRecord, setup_logger, tensorboard_writer
from detkit.engine.optim import OPTIMIZER_DEFAULTS, LRSchedule, build_optimizer, scaled_lr
from detkit.engine.runtime import TrainingDiverged, move_batch, resolve_amp, seed_everything, set_sampler_epoch

logger = logging.getLogger("detkit")


def _cat_ids(dataset) -> list[int] | None:
    """The dataset's label -> category id map as a list (None for datasets without one)."""
    m = getattr(dataset, "label_to_cat_id", None)
    if m is None:
        return None
    return [int(m[i]) for i in range(len(m))]


class Trainer:
    """Train ``cfg['model']`` on ``cfg['data']['train']``, evaluate on ``data.val``; ``Trainer(cfg).fit()``.

    Args:
        cfg: resolved config dict (see docs/training.md); work_dir: output folder (default
            ``cfg['work_dir']`` or ``work_dirs/run``); device: ``cpu``, ``cuda``, ``cuda:N`` (default: CUDA
            when available); resume: True (``work_dir/latest.pth``) or a checkpoint path; load_from:
            weights to start from; seed / amp: override ``seed`` / ``train.amp``; deterministic: ask
            torch for deterministic kernels.
    """

    def __init__(
        self,
        cfg: dict,
        work_dir: str | Path | None = None,
        device: str | None = None,
        resume: bool | str | Path | None = None,
        load_from: str | Path | None = None,
        seed: int | None = None,
        amp: Any = None,
        deterministic: bool = False,
    ):
        cfg = resolve_config(cfg)
        if seed is not None:
            cfg["seed"] = int(seed)
        if amp is not None:
            cfg["train"]["amp"] = amp
        self.cfg, self.tcfg = cfg, cfg["train"]
        self.device = dist.init_distributed(device)
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.main = self.rank == 0
        self.work_dir = Path(work_dir or cfg.get("work_dir") or "work_dirs/run")
        setup_logger(self.work_dir if self.main else None, self.main)
        self.resume_hint = f"Trainer(cfg, work_dir={str(self.work_dir)!r}, resume=True).fit()"
        seed_everything(cfg["seed"] + self.rank, deterministic)
        self._build_data()
        self._build_model(load_from)
        self._build_optim()
        self.record = RunRecord(self.work_dir)
        self.epoch = self.iter = self.iter_in_epoch = self.nonfinite = 0
        self.best: dict[str, Any] = {}
        self.interrupted: str | None = None
        self.tb = None
        self._signals = dist.StopSignals()
        self._group_bad = False
        if self.main:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            dump_config(cfg, self.work_dir / "config.yaml")
        if resume:
            self._resume(self.work_dir / "latest.pth" if resume is True else Path(resume))
        elif self.main:
            self.record.reset()

    # ------------------------------------------------------------------ building
    def _build_data(self) -> None:
        data = self.cfg["data"]
        self.train_set = builders.build_dataset(data["train"])
        self.train_loader = builders.build_dataloader(
            self.cfg, "train", distributed=dist.is_dist(), seed=self.cfg["seed"], start_iter=0, dataset=self.train_set
        )
        self.iters_per_epoch = len(self.train_loader)
        if self.iters_per_epoch == 0:
            raise ValueError(
                f"data.train gives no batch (dataset of {len(self.train_set)} samples, "
                f"data.batch_size {data.get('batch_size')}); add images or lower the batch size"
            )
        self.val_loader = self.evaluator = None
        if data.get("val"):
            val_set = builders.build_dataset(data["val"])
            self.val_loader = builders.build_dataloader(
                self.cfg, "val", distributed=dist.is_dist(), seed=self.cfg["seed"], dataset=val_set
            )
            self.evaluator = builders.build_evaluator(self.cfg, val_set)

    def _build_model(self, load_from) -> None:
        from detkit.models.build import build_model

        self.model = build_model(self.cfg, class_names=builders.model_class_names(self.train_set))
        self.model.to(self.device)
        if dist.is_dist() and self.tcfg["sync_bn"]:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        if load_from:
            logger.info("loading weights from %s", load_from)
            load_weights(self.model, model_state(load_checkpoint(load_from)), source=str(load_from))
        self.ddp = None
        if dist.is_dist():
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = nn.parallel.DistributedDataParallel(
                self.model, device_ids=ids, find_unused_parameters=self.tcfg["find_unused_parameters"]
            )
        ema = self.tcfg["ema"]
        self.ema = ModelEMA(self.model, **ema) if ema else None

    def _build_optim(self) -> None:
        acc = int(self.tcfg["accumulate"])
        bs = int(self.cfg["data"].get("batch_size", 1))
        self.total_batch = bs * self.world * acc
        self.optimizer = build_optimizer(self.model, self.cfg["optimizer"], self.total_batch)
        self.base_lr = scaled_lr({**OPTIMIZER_DEFAULTS, **self.cfg["optimizer"]}, self.total_batch)
        logger.info(
            "lr %g (optimizer.lr %g x total batch %d [%d per process x %d processes x %d accumulate] "
            "/ base_batch_size %s)",
            self.base_lr,
            self.cfg["optimizer"]["lr"],
            self.total_batch,
            bs,
            self.world,
            acc,
            self.cfg["optimizer"]["base_batch_size"],
        )
        self.schedule = LRSchedule.from_config(self.cfg["scheduler"], self.tcfg["max_epochs"], self.iters_per_epoch)
        self.amp_dtype = resolve_amp(self.tcfg["amp"], self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

    # ------------------------------------------------------------------ checkpoints
    def _state(self) -> dict:
        rng = dist.all_gather_object(get_rng_state())  # collective: every rank calls it
        meta = {
            "config": self.cfg,
            "class_names": list(self.model.class_names),
            "epoch": self.epoch,
            "iter": self.iter,
            "iter_in_epoch": self.iter_in_epoch,
            "version": detkit.__version__,
            "world_size": self.world,
            "best": self.best,
            "nonfinite": self.nonfinite,
            "cat_ids": _cat_ids(self.train_set),
        }
        state = {
            "model": (self.ema.module if self.ema else self.model).state_dict(),
            "meta": meta,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "rng": rng,
        }
        if self.ema:
            state["model_raw"] = self.model.state_dict()
        return state

    def save(self, *names: str) -> None:
        """Write the training state to each ``work_dir/<name>`` (rank 0; every rank must call)."""
        state = self._state()
        if self.main:
            for name in names:
                save_checkpoint(state, self.work_dir / name)
            self.record.save_history()

    def _resume(self, path: Path) -> None:
        ckpt = load_checkpoint(path)
        meta = ckpt["meta"]
        try:
            self.model.load_state_dict(ckpt["model_raw"] if ckpt.get("model_raw") is not None else ckpt["model"])
        except RuntimeError as e:
            raise ValueError(
                f"{path}: the weights do not fit the config's model ({str(e).splitlines()[0]}); "
                "resume with the config of that run, or start anew with --load-from"
            ) from e
        if self.ema:
            self.ema.load_state_dict(
                ckpt["ema"] or {"updates": 0}, ckpt["model"] if ckpt.get("ema") else self.model.state_dict()
            )
        fresh = [g["initial_lr"] for g in self.optimizer.param_groups]
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except ValueError as e:
            raise ValueError(
                f"{path}: the optimizer state does not fit ({e}); were optimizer.lr_mult or the "
                "decay settings changed? Start anew with --load-from to keep the weights"
            ) from e
        for g, lr in zip(self.optimizer.param_groups, fresh):
            g["initial_lr"] = lr  # the config in force decides the LR, the checkpoint the momentum
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.iter, self.iter_in_epoch = meta["epoch"], meta["iter"], meta["iter_in_epoch"]
        self.best, self.nonfinite = meta.get("best") or {}, meta.get("nonfinite", 0)
        for line in self.schedule.compare(LRSchedule.from_state(ckpt["scheduler"]), self.base_lr, self.iter):
            logger.info(line)
        rng = ckpt.get("rng") or []
        if len(rng) == self.world:
            set_rng_state(rng[self.rank])
        else:
            logger.warning(
                "checkpoint was written by %d process(es), this run has %d: RNG states are not "
                "restored, the resumed run is not bit-exact",
                len(rng),
                self.world,
            )
        if self.main:
            self.record.truncate(self.iter)
        logger.info(
            "resumed from %s: epoch %d, iteration %d (%d into the epoch)",
            path,
            self.epoch,
            self.iter,
            self.iter_in_epoch,
        )

    # ------------------------------------------------------------------ loop
    def fit(self) -> dict[str, float]:
        """Train up to ``train.max_epochs``; return the last evaluation's metrics ({} if none ran)."""
        max_epochs = self.tcfg["max_epochs"]
        if self.epoch >= max_epochs:
            logger.info(
                "nothing to do: the checkpoint is at epoch %d and train.max_epochs is %d "
                "(raise train.max_epochs to extend the run)",
                self.epoch,
                max_epochs,
            )
            rows = self.record.metrics() if self.main else []
            return {k: v for k, v in rows[-1].items() if k not in ("epoch", "iter")} if rows else {}
        if callable(getattr(self.train_set, "set_max_epochs", None)):  # e.g. MixDataset's close_mosaic
            self.train_set.set_max_epochs(max_epochs)  # before the loader's workers start
        self.tb = tensorboard_writer(self.work_dir, self.tcfg["tensorboard"] and self.main, logger)
        logger.info(
            "training %s for %d epochs (%d iterations per epoch) on %s, %d process(es), amp %s",
            type(self.model).__name__,
            max_epochs,
            self.iters_per_epoch,
            self.device,
            self.world,
            self.amp_dtype,
        )
        metrics: dict[str, float] = {}
        with dist.StopSignals() as self._signals:
            while self.epoch < max_epochs:
                self._train_epoch()
                if self.interrupted:
                    self.save("latest.pth")
                    logger.warning(
                        "stopped by %s at epoch %d, iteration %d; latest.pth saved. Resume with: %s",
                        self.interrupted,
                        self.epoch + 1,
                        self.iter,
                        self.resume_hint,
                    )
                    break
                self.epoch, self.iter_in_epoch = self.epoch + 1, 0
                metrics = self._end_of_epoch(max_epochs) or metrics
        self._finish()
        return metrics

    def _end_of_epoch(self, max_epochs: int) -> dict[str, float]:
        metrics: dict[str, float] = {}
        last = self.epoch == max_epochs
        if self.evaluator is not None and (last or self.epoch % max(1, self.tcfg["eval_interval"]) == 0):
            metrics = self._evaluate()
        names = ["latest.pth"]
        ci = self.tcfg["checkpoint_interval"]
        if ci and self.epoch % int(ci) == 0:
            names.append(f"epoch_{self.epoch}.pth")
        if metrics and self._is_best(metrics):
            names.append("best.pth")
            self._write_eval_report()
        self.save(*names)
        return metrics

    def _is_best(self, metrics: dict[str, float]) -> bool:
        key = self.tcfg["best_metric"] if self.tcfg["best_metric"] in metrics else next(iter(metrics))
        value = metrics[key]
        if math.isnan(value) or (self.best and value <= self.best["value"]):
            return False
        self.best = {"metric": key, "value": value, "epoch": self.epoch, "iter": self.iter}
        logger.info("new best %s = %.4f at epoch %d: best.pth", key, value, self.epoch)
        return True

    def _write_eval_report(self) -> None:
        """PR curves and confusion matrix of the new best evaluation (rank 0); a failure is only a warning."""
        write_report = getattr(self.evaluator, "write_report", None)
        if not self.main or not callable(write_report):
            return
        try:
            written = write_report(self.work_dir)
            if written:
                logger.info("evaluation plots: %s", ", ".join(p.name for p in written))
        except Exception as e:  # noqa: BLE001  (a plot must never stop training)
            logger.warning("could not write the evaluation plots (%s: %s); training continues", type(e).__name__, e)

    def _evaluate(self) -> dict[str, float]:
        model = self.ema.module if self.ema else self.model
        metrics = evaluate(model, self.val_loader, self.evaluator, self.device, self.amp_dtype)
        if self.main:
            self.record.add_metrics({"epoch": self.epoch, "iter": self.iter, **metrics})
            logger.info(
                "evaluation at epoch %d:\n%s", self.epoch, "\n".join(f"  {k:<16s} {v:.4f}" for k, v in metrics.items())
            )
            if self.tb:
                for k, v in metrics.items():
                    self.tb.add_scalar(k, v, self.iter)
        return metrics

    def _finish(self) -> None:
        if self.main:
            from detkit.engine.plots import plot_history

            self.record.save_history()
            written = plot_history(self.record.history, self.record.metrics(), self.work_dir)
            logger.info("plots: %s", ", ".join(p.name for p in written) or "(no data)")
        if getattr(self, "tb", None):
            self.tb.close()

    def _epoch_iterator(self):
        """Iterator over the rest of the current epoch's batches; consumes no global RNG."""
        loader = self.train_loader
        with preserve_rng():
            if not set_sampler_epoch(loader, self.epoch, self.iter_in_epoch):
                it = iter(loader)  # the sampler cannot skip: draw and drop the batches already done
                for _ in range(self.iter_in_epoch):
                    next(it)
                return it
            return iter(loader)

    def _train_epoch(self) -> None:
        (self.ddp or self.model).train()
        progress = Progress(
            self.iters_per_epoch,
            self.iter_in_epoch,
            self.epoch,
            self.tcfg["max_epochs"],
            self.tcfg["log_interval"],
            self.main,
            logger,
            self.device,
        )
        self._window: dict[str, list[float]] = {}
        ci = self.tcfg["checkpoint_iters"]
        try:
            for batch in self._epoch_iterator():
                boundary = self._train_step(batch)
                self.iter, self.iter_in_epoch = self.iter + 1, self.iter_in_epoch + 1
                self._log_step(progress)
                if not boundary:
                    continue
                if self.interrupted:
                    return
                if ci and self.iter % int(ci) == 0 and self.iter_in_epoch < self.iters_per_epoch:
                    self.save("latest.pth")
        finally:
            progress.close()

    def _train_step(self, batch: dict | None) -> bool:
        """One micro-batch: forward, backward, and at accumulation boundaries the optimizer step.

        Returns True at an accumulation boundary (a consistent point to stop or checkpoint).
        """
        acc = int(self.tcfg["accumulate"])
        n = self.iter_in_epoch + 1
        boundary = n % acc == 0 or n == self.iters_per_epoch
        lr = self.schedule.apply(self.optimizer, self.iter)
        self._lr = lr
        losses, bad = {}, []
        sync = self.ddp.no_sync() if (self.ddp is not None and not boundary) else contextlib.nullcontext()
        with sync:
            if batch is not None:
                with torch.autocast(
                    self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None
                ):
                    losses = (self.ddp or self.model)(move_batch(batch, self.device))
                bad = [k for k, v in losses.items() if not torch.isfinite(v).all()]
            flags = torch.tensor([float(bool(bad)), float(batch is None), float(self._signals.requested)])
            flags = dist.all_reduce_sum(flags.to(self.device)).cpu()
            skip = bool(flags[0] or flags[1])
            if not skip:
                total = sum(losses.values())
                self.scaler.scale(total / acc).backward()
        if flags[2] and not self.interrupted:
            self.interrupted = self._signals.signame or "a signal on another rank"
        self._group_bad = self._group_bad or skip
        if flags[0]:
            self._count_nonfinite(bad)
        elif batch is not None:
            self.nonfinite = 0
            for k, v in losses.items():
                self._window.setdefault(k, []).append(float(v.detach()))
            self._window.setdefault("loss", []).append(float(sum(v.detach() for v in losses.values())))
        if boundary:
            self._optimizer_step()
        return boundary

    def _count_nonfinite(self, bad: list[str]) -> None:
        self.nonfinite += 1
        names = sorted({k for names in dist.all_gather_object(bad) for k in names})
        logger.warning(
            "non-finite loss (%s) at iteration %d: step skipped (%d in a row, limit %d)",
            ", ".join(names),
            self.iter,
            self.nonfinite,
            self.tcfg["max_nonfinite"],
        )
        if self.nonfinite >= int(self.tcfg["max_nonfinite"]):
            raise TrainingDiverged(
                f"training stopped: {self.nonfinite} non-finite losses in a row (last: {', '.join(names)}) "
                f"at epoch {self.epoch + 1}, iteration {self.iter}; the last good checkpoint is "
                f"{self.work_dir / 'latest.pth'}. Lower optimizer.lr, set train.grad_clip, or check the data"
            )

    def _optimizer_step(self) -> None:
        if self._group_bad:
            self.optimizer.zero_grad(set_to_none=True)
            self._group_bad = False
            return
        clip = self.tcfg["grad_clip"]
        if clip:
            self.scaler.unscale_(self.optimizer)
            norm = nn.utils.clip_grad_norm_(self.model.parameters(), float(clip))
            if not torch.isfinite(norm) and not self.scaler.is_enabled():
                self.optimizer.zero_grad(set_to_none=True)
                self._count_nonfinite(["grad_norm"])
                return
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema:
            self.ema.update(self.model)

    def _log_step(self, progress: Progress) -> None:
        means = {k: sum(v) / len(v) for k, v in self._window.items() if v}
        progress.update(means, self._lr, self.iter, self.schedule.max_iters - self.iter)
        interval = max(1, int(self.tcfg["log_interval"]))
        if self.iter % interval and self.iter_in_epoch != self.iters_per_epoch:
            return
        keys = sorted(means)
        vec = (
            dist.all_reduce_sum(torch.tensor([means[k] for k in keys], dtype=torch.float64, device=self.device)).cpu()
            / self.world
        )
        reduced = dict(zip(keys, vec.tolist()))
        if self.main and reduced:
            self.record.add_losses(self.iter, self.iter / self.iters_per_epoch, self._lr, reduced)
            if self.tb:
                for k, v in reduced.items():
                    self.tb.add_scalar(f"train/{k}", v, self.iter)
                self.tb.add_scalar("train/lr", self._lr, self.iter)
        self._window = {}
