"""The trainer: DDP, AMP, gradient accumulation, EMA, exact resume, evaluation, checkpoints.

Roles live beside it: one training step (step.py), the run's length in epochs or iterations and its
evaluation / checkpoint points (run_length.py), building the parts (parts.py), pre-flight checks (preflight.py),
the work-dir rule (workdir.py), evaluation during training (validation.py), what checkpoints hold
(train_state.py), what the screen shows (summary.py).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from detkit.config import dump_config, load_config
from detkit.engine import dist, step, train_state
from detkit.engine.checkpoint import preserve_rng, save_checkpoint
from detkit.engine.defaults import resolve_config
from detkit.engine.early_stop import patience_stop
from detkit.engine.logger import (
    Progress,
    RunRecord,
    close_log_file,
    log_to_file,
    setup_logger,
    tensorboard_writer,
    use_log_file,
    warn_to_file,
)
from detkit.engine.loss_meter import LossMeter
from detkit.engine.loss_watch import CollapseWatch
from detkit.engine.optim import unused_type_keys
from detkit.engine.parts import build_data, build_model_parts, build_optimization
from detkit.engine.preflight import PreflightError, check_best_metric
from detkit.engine.run_length import RunLength
from detkit.engine.runtime import (
    deterministic_flags,
    restore_deterministic_flags,
    seed_everything,
    set_sampler_epoch,
)
from detkit.engine.summary import epoch_line, log_final_summary, log_start_notes
from detkit.engine.validation import EvalCallback, Validator, call_eval_callbacks
from detkit.engine.workdir import check_outside_data, check_work_dir, claim_work_dir, how_to_go_on, resumes_own_run
from detkit.models.backbones.init_weights import without_init_checkpoint

logger = logging.getLogger("detkit")


class EvaluationFailed(RuntimeError):
    """The evaluation after an epoch raised (``__cause__``); that epoch's latest.pth was written before it."""


class Trainer:
    """Train ``cfg['model']`` on ``cfg['data']['train']``, evaluate on ``data.val``; ``Trainer(cfg).fit()``.

    Args:
        cfg: a config dict (see docs/training.md), or a config file or packaged config name (``load_config``); work_dir: output folder (default
            ``cfg['work_dir']`` or ``work_dirs/run``); device: ``cpu``, ``cuda``, ``cuda:N``, ``N``, ``mps``
            (default: CUDA when available); resume: True (``work_dir/latest.pth``) or a checkpoint path;
            load_from: weights to start from; seed / amp: override ``seed`` / ``train.amp``;
            deterministic: ask torch for deterministic kernels; exist_ok: when ``work_dir`` already holds a
            run, move it into ``work_dir/previous-N/`` instead of refusing (:class:`WorkDirInUse`; also before
            ``resume`` from a checkpoint of another folder goes on here, refused otherwise);
            eval_callbacks: functions called on rank 0 after each evaluation with ``(epoch, metrics)`` (the
            iteration instead of the epoch with ``train.max_iters``); the first one that returns a non-empty
            string stops the run there, like a finished run (``latest.pth`` holds that point, the summary is
            printed) with that string as ``stop_reason`` (e.g. a hyperparameter search that prunes the trial);
            allow_data_change: resume although the data changed (other data.train / data.val files, folders or
            classes: refused otherwise, :mod:`detkit.engine.resume_data`); the best is then measured anew.

    Everything that can be checked before the first iteration is (:mod:`detkit.engine.preflight`); the log
    file, ``config.yaml`` and any move of a previous run come after those checks.
    """

    def __init__(
        self,
        cfg: dict | str | os.PathLike,
        work_dir: str | Path | None = None,
        device: str | None = None,
        resume: bool | str | Path | None = None,
        load_from: str | Path | None = None,
        seed: int | None = None,
        amp: Any = None,
        deterministic: bool = False,
        exist_ok: bool = False,
        eval_callbacks: Iterable[EvalCallback] = (),
        allow_data_change: bool = False,
    ):
        if isinstance(cfg, (str, os.PathLike)):  # a config file or a packaged config's name, as init_model takes
            cfg = load_config(cfg)
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
        self.resume_hint = f"Trainer(cfg, work_dir={str(self.work_dir)!r}, resume=True).fit()"
        self.tool = "detkit {}"  # command template of the summary's evaluate / infer / export lines
        self._on_main(check_work_dir, self.work_dir, resume, exist_ok)  # refuses before touching anything
        # exist_ok (a new run, or --resume CKPT of another folder): the work dir's run moves to previous-N
        self.moves_previous = bool(exist_ok and not resumes_own_run(self.work_dir, resume))
        self._on_main(check_outside_data, self.work_dir, self.cfg)
        setup_logger(None, self.main)  # the log file opens once the checks below have passed
        self._lock = self._log_file = None  # the work dir's lock and log.txt (rank 0, claimed to the end of fit)
        self.allow_data_change, self.data_changed = bool(allow_data_change), False
        self._flags = deterministic_flags()  # put back when fit() ends (a notebook's next cells)
        seed_everything(cfg["seed"] + self.rank, deterministic)
        try:
            self._setup(load_from, resume, exist_ok, eval_callbacks)
        except BaseException:
            self._release()  # a failed construction leaves the work dir free and torch as it was (a notebook)
            raise

    def _setup(self, load_from, resume, exist_ok: bool, eval_callbacks) -> None:
        """The rest of the construction: parts, run length, validation, state to resume, the work dir claimed."""
        self._build(load_from, resuming=bool(resume))
        self.record = RunRecord(self.work_dir)
        t = self.tcfg
        self.length = RunLength.from_config(t, self.iters_per_epoch)  # epochs, or iterations (train.max_iters)
        self.validator = Validator(
            self.evaluator, self.val_loader, self.record, t["best_metric"], self.length, self.work_dir,
            self.main, self.device, self.amp_dtype,
        )  # fmt: skip
        self.epoch = self.iter = self.iter_in_epoch = self.nonfinite = self.skipped_samples = 0
        self._shown_losses: dict[str, float] = {}  # the last losses averaged over the processes (log lines)
        self.interrupted: str | None = None
        self.eval_callbacks: list[EvalCallback] = list(eval_callbacks)
        self.stop_reason: str | None = None  # set when an eval callback ends the run early
        if t["patience"]:  # early stopping; counts the evaluations in metrics.jsonl, so a resume goes on counting
            self.eval_callbacks.append(patience_stop(self.validator, int(t["patience"])))
        self.tb = None
        self._signals = dist.StopSignals(verbose=self.main, log=warn_to_file)
        self._group_bad = False
        self.losses, self.loss_watch = LossMeter(), CollapseWatch()
        self.resumed_at: tuple[int, bool] | None = None  # (the checkpoint's iteration, re-counted since)
        if resume:  # before anything is written: a checkpoint that cannot be resumed changes nothing
            train_state.restore_training_state(self, self.work_dir / "latest.pth" if resume is True else Path(resume))
        self.nothing_to_do = train_state.nothing_to_do(self)  # a resume at the run's end: no file is touched
        if not self.nothing_to_do:
            self._on_main(self._claim_work_dir, self.moves_previous)
            if self.main:
                self.record.start(self.resumed_at, self.iters_per_epoch)

    def _build(self, load_from, resuming: bool = False) -> None:
        """Data, model and optimization, each checked before the first iteration (see preflight.py). A resumed
        run's weights come from its checkpoint: the backbone's start weights (init_checkpoint) are not read."""
        unused = [] if resuming else unused_type_keys(self.cfg)  # a resumed run goes on as it was started
        if unused:
            raise PreflightError("; ".join(message for _, message in unused))
        data = build_data(self.cfg, self.device)
        self.train_set, self.train_loader, self.val_loader = data.train_set, data.train_loader, data.val_loader
        self.iters_per_epoch, self.evaluator, self.val_set = data.iters_per_epoch, data.evaluator, data.val_set
        model_cfg = without_init_checkpoint(self.cfg) if resuming else self.cfg  # the file may have moved since
        self.model, self.ddp, self.ema = build_model_parts(model_cfg, self.train_set, self.device, load_from)
        opt = build_optimization(self.cfg, self.model, self.iters_per_epoch, self.device)
        self.optimizer, self.schedule, self.base_lr = opt.optimizer, opt.schedule, opt.base_lr
        self.total_batch, self.amp_dtype, self.scaler = opt.total_batch, opt.amp_dtype, opt.scaler
        if self.evaluator is not None:
            check_best_metric(self.evaluator, self.tcfg["best_metric"])
        elif self.tcfg["patience"]:
            raise PreflightError(
                f"train.patience {self.tcfg['patience']} counts evaluations, but there is no data.val to evaluate "
                "on; add data.val or set train.patience: 0"
            )

    @property
    def best(self) -> dict[str, Any]:
        """The best evaluation so far: ``{"metric", "value", "epoch", "iter"}`` ({} before one)."""
        return self.validator.best

    @best.setter
    def best(self, value: dict[str, Any]) -> None:
        self.validator.best = dict(value)

    def _on_main(self, fn, *args) -> None:
        """Run ``fn`` on rank 0; a pre-flight failure there is raised on every rank."""
        dist.on_main(fn, *args, errors=(PreflightError, OSError))

    def _claim_work_dir(self, exist_ok: bool) -> None:
        """Rank 0, after the checks: claim the work dir (:func:`detkit.engine.workdir.claim_work_dir`)."""
        text = dump_config(self.cfg)
        self._lock, self._log_file = claim_work_dir(self.work_dir, text, exist_ok, self.data_changed)  # to fit's end

    # ------------------------------------------------------------------ checkpoints
    def save(self, *names: str, best: bool = False) -> None:
        """Write the training state to each ``work_dir/<name>``, and its weights to best.pth when ``best``.

        Rank 0 writes; every rank must call (the RNG states are gathered). Weights that are no longer finite (a
        run diverging) are not written: the last checkpoint stays the one to resume from.
        """
        unsaved = train_state.non_finite_note(self.model, [*names, *(["best.pth"] if best else [])], self.iter)
        if unsaved:  # the same on every rank (DDP keeps the weights equal)
            return logger.warning(unsaved)
        state = train_state.training_state(self)
        if self.main:
            for name in names:
                save_checkpoint(state, self.work_dir / name)
            if best:
                save_checkpoint(train_state.weights_state(state), self.work_dir / "best.pth")
            self.record.save_history()

    # ------------------------------------------------------------------ loop
    def fit(self) -> dict[str, float]:
        """Train up to ``train.max_epochs`` (or ``train.max_iters``); return the last evaluation's metrics ({} if
        none ran). An error's traceback goes to log.txt; the work dir's lock and log.txt are let go at the end,
        however the run ends."""
        try:
            if self.main and self._log_file is not None:  # (another Trainer built since took the log over)
                use_log_file(self._log_file)
            return self._fit()
        except KeyboardInterrupt as e:  # "a second SIGINT" (dist.StopSignals), or a Ctrl-C outside the steps
            if self.main:
                warn_to_file(f"stopped immediately ({str(e) or 'SIGINT'}). {how_to_go_on(self)}")
            raise
        except Exception as e:
            if not isinstance(e, EvaluationFailed):  # (its traceback is logged where it is made)
                log_to_file("training stopped by an error", exc_info=e)
            raise
        finally:
            self._release()

    def _release(self) -> None:
        """Let go of the work dir's lock and its log.txt, and put torch's determinism settings back (the end of fit,
        or a construction that failed after claiming)."""
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.close()
        if self.main:
            log_file, self._log_file = self._log_file, None
            close_log_file(log_file)
        restore_deterministic_flags(self._flags)

    def _fit(self) -> dict[str, float]:
        length = self.length
        if length.by_iter and self.iter_in_epoch >= self.iters_per_epoch:  # stopped after an epoch's last batch
            self.epoch, self.iter_in_epoch = self.epoch + 1, 0
        if self.nothing_to_do:  # (decided before the work dir was claimed: it was not, and nothing is written)
            return train_state.nothing_done(self)
        pending = self.validator.pending(self.epoch, self.iter, self.iter_in_epoch)
        if callable(getattr(self.train_set, "set_max_epochs", None)):  # e.g. MixDataset's close_mosaic
            self.train_set.set_max_epochs(length.epochs)  # before the loader's workers start
        self.tb = self.validator.tb = tensorboard_writer(self.work_dir, self.tcfg["tensorboard"] and self.main, logger)
        logger.info(
            "training %s for %s on %s, %d process(es), amp %s",
            type(self.model).__name__, length.describe(), self.device, self.world,
            str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "off",
        )  # fmt: skip
        log_start_notes(
            logger, length.schedule_note(self.schedule), {"data.train": self.train_set, "data.val": self.val_set}
        )
        self._started = self._since = time.perf_counter()
        metrics: dict[str, float] = {}
        if pending:  # the evaluation due at the checkpoint failed (or was interrupted): it comes first
            metrics = self._checkpoint_point(self._since) if length.by_iter else self._evaluate_epoch(self._since)
        with dist.StopSignals(verbose=self.main, log=warn_to_file) as self._signals:
            while not length.done(self.epoch, self.iter) and not self.interrupted and not self.stop_reason:
                started = time.perf_counter()
                metrics = self._train_epoch() or metrics
                if self.interrupted:
                    self._save_interrupted()
                    break
                if self.iter_in_epoch >= self.iters_per_epoch:  # (an iteration-based run rolls over in the loop)
                    self.epoch, self.iter_in_epoch = self.epoch + 1, 0
                    metrics = (self._checkpoint_point(started) if not length.by_iter else {}) or metrics
        self._finish()
        return metrics

    def _save_interrupted(self) -> None:
        self.save("latest.pth")
        if not self.main:  # the main process says it once
            return
        logger.warning(
            "stopped by %s at epoch %d, iteration %d; latest.pth saved. Resume with: %s",
            self.interrupted, self.epoch + 1, self.iter, self.resume_hint,
        )  # fmt: skip

    def _checkpoint_point(self, started: float) -> dict[str, float]:
        """The end of an epoch, or an evaluation / checkpoint iteration of an iteration-based run: save
        latest.pth (and epoch_N.pth / iter_N.pth) before evaluating, so that an evaluation error loses nothing,
        then evaluate when due; else the line of the epoch (or of the evaluation interval without data.val)."""
        name = self.length.checkpoint_name(self.epoch, self.iter)
        self.save("latest.pth", *([name] if name else []))
        if not self.validator.due(self.epoch, self.iter):
            if not self.length.by_iter or self.length.eval_due(self.epoch, self.iter):
                self._log_epoch({}, started, 0.0)
            return {}
        return self._evaluate_epoch(started)

    def _evaluate_epoch(self, started: float) -> dict[str, float]:
        t0 = time.perf_counter()
        try:
            metrics = self.validator.run(self.ema.module if self.ema else self.model, self.epoch, self.iter)
        except Exception as e:  # noqa: BLE001  (whatever failed, latest.pth is saved: say how to go on)
            raise self._evaluation_failed(e) from e
        if metrics and self.validator.is_best(metrics, self.epoch, self.iter):
            self.save("latest.pth", best=True)  # latest.pth records the new best too
            self.validator.write_report()
        self._log_epoch(metrics, started, time.perf_counter() - t0)
        if metrics and self.eval_callbacks:
            self._call_eval_callbacks(metrics)
        return metrics

    def _call_eval_callbacks(self, metrics: dict[str, float]) -> None:
        """:func:`detkit.engine.validation.call_eval_callbacks`; its reason to stop becomes ``stop_reason``."""
        position = self.length.position(self.epoch, self.iter)
        reason = call_eval_callbacks(self.eval_callbacks, position, metrics, self.main)
        if reason:
            self.stop_reason = reason
            logger.info("stopping after %s %d: %s", self.length.unit, position, reason)

    def _evaluation_failed(self, e: Exception) -> EvaluationFailed:
        where = f"{self.length.unit} {self.length.position(self.epoch, self.iter)}"
        log_to_file("evaluation after %s failed", where, exc_info=e)  # the traceback: log.txt only
        first = (str(e).strip().splitlines() or [""])[0][:300]
        return EvaluationFailed(
            f"evaluation after {where} failed ({type(e).__name__}: {first}); the {self.length.unit} is saved in "
            f"{self.work_dir / 'latest.pth'} and the traceback is in {self.work_dir / 'log.txt'}. Fix the cause "
            f"and resume (the evaluation is redone first) with: {self.resume_hint}"
        )

    def _log_epoch(self, metrics: dict[str, float], started: float, eval_seconds: float) -> None:
        """The line of the epoch (or of the evaluation interval) on screen: mean losses, the tracked metric, the time."""
        line = epoch_line(
            self.length.position(self.epoch, self.iter), self.length.total, self.losses.epoch_means(), metrics,
            self.validator.metric_key(metrics), self.best, time.perf_counter() - started, eval_seconds,
            self.skipped_samples, unit=self.length.key, val_skipped=self.validator.skipped if metrics else 0,
        )  # fmt: skip
        logger.info(line)
        self.losses.start_epoch()
        self.skipped_samples, self._since = 0, time.perf_counter()

    def _finish(self) -> None:
        if self.main:
            log_final_summary(self, time.perf_counter() - self._started)
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

    def _train_epoch(self) -> dict[str, float]:
        """The rest of the current epoch; an iteration-based run evaluates and checkpoints at its points in it
        and returns at ``train.max_iters``. Returns the last evaluation's metrics ({} when none ran)."""
        (self.ddp or self.model).train()
        length = self.length
        progress = Progress(
            length.total_iters if length.by_iter else self.iters_per_epoch,
            self.iter if length.by_iter else self.iter_in_epoch,
            self.epoch, length.epochs, self.tcfg["log_interval"], self.main, logger, self.device,
            by_iter=length.by_iter,
        )  # fmt: skip
        if not length.by_iter:  # an iteration-based run's line covers the iterations since the previous one
            self.losses.start_epoch()
            self.skipped_samples = 0
        ci, metrics = self.tcfg["checkpoint_iters"], {}
        try:
            for batch in self._epoch_iterator():
                boundary = self._train_step(batch)
                self.iter, self.iter_in_epoch = self.iter + 1, self.iter_in_epoch + 1
                step.log_step(self, progress)
                if not boundary:
                    continue
                if self.interrupted:
                    return metrics
                if length.by_iter and self.iter_in_epoch == self.iters_per_epoch:
                    self.epoch, self.iter_in_epoch = self.epoch + 1, 0  # the epoch's last batch: roll over
                if length.is_point(self.iter):
                    metrics = self._checkpoint_point(self._since) or metrics
                    progress.restart_rate()
                    if length.done(self.epoch, self.iter) or self.stop_reason:
                        return metrics
                elif ci and self.iter % int(ci) == 0 and (length.by_iter or self.iter_in_epoch < self.iters_per_epoch):
                    self.save("latest.pth")
        finally:
            progress.close()
        return metrics

    def _train_step(self, batch: dict | None) -> bool:
        """One micro-batch (:func:`detkit.engine.step.train_step`); True at an accumulation boundary."""
        return step.train_step(self, batch)

    def _optimizer_step(self) -> None:
        step.optimizer_step(self)
