"""One trial of a search: the config with the sampled values, an ordinary training run in ``DIR/trial_<n>/``
(the Trainer, quiet on screen, everything in its log.txt) and its outcome for Optuna."""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from detkit.config import ConfigError
from detkit.engine.logger import LOGGER_NAME
from detkit.tune.preflight import check_trial_config
from detkit.tune.space import Param, apply_params


@dataclass
class TrialOutcome:
    """What a trial ended with: its state, its value (COMPLETE), a message (why it was pruned or failed), when a
    signal stopped it the signal's name (the search stops after recording the trial), and ``sampled``: True for a
    failure that the sampled values caused (training diverged, a non-finite metric, a sampled config the checks
    refuse), which other values may not repeat."""

    state: TrialState
    value: float | None = None
    message: str = ""
    interrupted: str | None = None
    sampled: bool = False


class PruneReporter:
    """Eval callback of a trial's Trainer: reports the metric to Optuna at each evaluation (the epoch, or the
    iteration with ``train.max_iters``, is the step) and asks the Trainer to stop when Optuna's pruner says so
    (never at the run's end: a trial that trained to the end is complete)."""

    def __init__(self, trial, metric: str, total: int, unit: str = "epoch"):
        self.trial, self.metric, self.total, self.unit = trial, metric, int(total), unit

    def __call__(self, step: int, metrics: dict[str, float]) -> str | None:
        value = metrics.get(self.metric)
        if value is None or not math.isfinite(value):
            return None
        self.trial.report(float(value), step)
        if step < self.total and self.trial.should_prune():
            return f"pruned at {self.unit} {step} of {self.total}: {self.metric} {value:.4f}"
        return None


def run_total(tcfg: dict) -> tuple[int, str]:
    """The run's length and its unit: ``(train.max_iters, 'iteration')`` when set, else ``(max_epochs, 'epoch')``."""
    if tcfg.get("max_iters") is not None:
        return int(tcfg["max_iters"]), "iteration"
    return int(tcfg["max_epochs"]), "epoch"


def first_line(e: BaseException) -> str:
    """``Type: first line of the message`` (at most 300 characters)."""
    text = (str(e).strip().splitlines() or [""])[0][:300]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """The trial's training writes nothing on screen (no bars: stdout is no terminal; its lines go to its
    log.txt); the log handlers the trial's Trainer added (console, its log.txt) are closed afterwards."""
    loggers = [logging.getLogger(LOGGER_NAME), logging.getLogger(LOGGER_NAME + ".file")]
    before = {id(h) for lg in loggers for h in lg.handlers}
    with open(os.devnull, "w", encoding="utf-8") as sink, contextlib.redirect_stdout(sink):
        try:
            yield
        finally:
            for lg in loggers:
                for h in [h for h in lg.handlers if id(h) not in before]:
                    lg.removeHandler(h)
                    h.close()


def release_memory() -> None:
    """Between trials: collect the finished trial's objects and return its cached CUDA memory."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


@dataclass
class TrialRunner:
    """Runs one Optuna trial as a training run.

    Args:
        cfg: the resolved base config (``--set`` applied, engine defaults filled in); params: the searched keys;
        work_dir: the search's folder (trial n trains in ``work_dir/trial_<n>``); metric: the value of a trial
        (its last evaluation's); device: the Trainer's device (None: CUDA when available); tool: command
        template for the trials' summaries.
    """

    cfg: dict
    params: list[Param]
    work_dir: Path
    metric: str
    device: str | None = None
    tool: str = "detkit {}"

    def trial_dir(self, number: int) -> Path:
        return Path(self.work_dir) / f"trial_{number}"

    def config_for(self, values: dict[str, Any]) -> dict:
        """The resolved config of a trial with these (config) values; a ConfigError when it is not valid (the
        checks of ``detkit.tune.preflight.check_trial_config``: the config check and the Trainer's own)."""
        cfg = apply_params(self.cfg, values)
        check_trial_config(cfg)
        return cfg

    def __call__(self, trial) -> TrialOutcome:
        """Sample, train and evaluate; every error becomes a FAIL outcome (traceback in ``trial_<n>/error.txt``)."""
        out = self.trial_dir(trial.number)
        try:
            values = {p.key: p.suggest(trial) for p in self.params}
            cfg = self.config_for(values)
            return self._train(trial, cfg, out)
        except KeyboardInterrupt:
            return TrialOutcome(TrialState.FAIL, message="stopped at once by a second signal", interrupted="SIGINT")
        except ConfigError as e:
            self._write_error(out, e)
            return TrialOutcome(TrialState.FAIL, message=f"the sampled config is not valid: {e}", sampled=True)
        except Exception as e:  # noqa: BLE001  (a failed trial is recorded and the search goes on)
            from detkit.engine.runtime import TrainingDiverged

            self._write_error(out, e)
            return TrialOutcome(TrialState.FAIL, message=first_line(e), sampled=isinstance(e, TrainingDiverged))
        finally:
            release_memory()

    def _train(self, trial, cfg: dict, out: Path) -> TrialOutcome:
        from detkit.engine import Trainer

        reporter = PruneReporter(trial, self.metric, *run_total(cfg["train"]))
        with quiet_stdout():
            trainer = Trainer(cfg, work_dir=out, device=self.device, exist_ok=True, eval_callbacks=[reporter])
            trainer.tool = self.tool
            trainer.resume_hint = f"{self.tool.format('train')} {out / 'config.yaml'} --work-dir {out} --resume"
            metrics = trainer.fit()
        if trainer.interrupted:
            return TrialOutcome(
                TrialState.FAIL, message=f"stopped by {trainer.interrupted}", interrupted=trainer.interrupted
            )
        if trainer.stop_reason:
            return TrialOutcome(TrialState.PRUNED, message=trainer.stop_reason)
        value = metrics.get(self.metric)
        if value is None:
            given = ", ".join(metrics) or "nothing"
            return TrialOutcome(TrialState.FAIL, message=f"no evaluation gave {self.metric} (the last gave {given})")
        if not math.isfinite(value):
            return TrialOutcome(TrialState.FAIL, message=f"{self.metric} is {value}", sampled=True)
        return TrialOutcome(TrialState.COMPLETE, value=float(value))

    @staticmethod
    def _write_error(out: Path, e: BaseException) -> None:
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / "error.txt").write_text("".join(traceback.format_exception(e)), encoding="utf-8")
        except OSError:
            pass
