"""Evaluation during training: when it is due, running it, the metrics record, the best result, reports."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from detkit.engine import dist
from detkit.engine.evaluate import evaluate
from detkit.engine.logger import RunRecord, log_to_file
from detkit.engine.run_length import RunLength
from detkit.engine.summary import metrics_table

logger = logging.getLogger("detkit")

# Trainer(eval_callbacks=...): fn(epoch, metrics) after each evaluation (the iteration instead of the epoch in
# an iteration-based run, train.max_iters); a string returned stops the run
EvalCallback = Callable[[int, dict[str, float]], "str | None"]


class Validator:
    """Runs the evaluator on data.val at the epochs (or iterations) ``train.eval_interval`` names, and tracks the
    best.

    Args:
        evaluator / loader: built for data.val (None: no evaluation); record: the run's metrics.jsonl;
        best_metric: ``train.best_metric``; length: the run's :class:`RunLength` (``train.max_epochs`` or
        ``train.max_iters``, ``train.eval_interval``); work_dir: for reports; main: rank 0 (writes);
        device / amp_dtype: as in training.
    Attributes:
        best: ``{"metric", "value", "epoch", "iter"}`` of the best evaluation so far ({} before one); ``epoch``
            is the passes over the data done (a float) in an iteration-based run.
        tb: a TensorBoard writer (set by the trainer) or None.
    """

    def __init__(
        self,
        evaluator: Any,
        loader: Any,
        record: RunRecord,
        best_metric: str,
        length: RunLength,
        work_dir: Path,
        main: bool,
        device,
        amp_dtype,
    ):
        self.evaluator, self.loader, self.record = evaluator, loader, record
        self.best_metric, self.length = best_metric, length
        self.work_dir, self.main, self.device, self.amp_dtype = Path(work_dir), main, device, amp_dtype
        self.best: dict[str, Any] = {}
        self.skipped = 0  # data.val samples the last evaluation left out (None samples), over every process
        self.tb = None

    def due(self, epoch: int, it: int) -> bool:
        """True when an evaluation runs after ``epoch`` / iteration ``it`` (every ``train.eval_interval`` epochs,
        or iterations with ``train.max_iters``, and after the last)."""
        return self.evaluator is not None and self.length.eval_due(epoch, it)

    def pending(self, epoch: int, it: int, iter_in_epoch: int, rows: list[dict] | None = None) -> bool:
        """True when a resumed run stands where an evaluation was due but never finished (it failed). ``rows``: the
        metrics records to look in (default: metrics.jsonl's; read on rank 0 only)."""
        if (iter_in_epoch and not self.length.by_iter) or not self.due(epoch, it):
            return False
        if self.main and rows is None:
            rows = self.record.metrics()
        done = any(r.get("iter") == it for r in rows) if self.main else True
        return bool(dist.broadcast_object(not done))

    def run(self, model: nn.Module, epoch: int, it: int) -> dict[str, float]:
        """Evaluate ``model``; record the metrics (metrics.jsonl, the table in log.txt, TensorBoard). The data.val
        samples left out (summed over the processes) are ``skipped``, and ``{"skipped": {"data.val": N}}`` in
        the metrics.jsonl row when N > 0."""
        counts: dict[str, int] = {}
        metrics = evaluate(model, self.loader, self.evaluator, self.device, self.amp_dtype, counts=counts)
        self.skipped = int(dist.all_reduce_sum(torch.tensor([counts.get("skipped", 0)], device=self.device)).item())
        if self.main:
            extra = {"skipped": {"data.val": self.skipped}} if self.skipped else {}
            self.record.add_metrics({"epoch": self.length.epoch_of(epoch, it), "iter": it, **metrics, **extra})
            log_to_file(metrics_table(self.length.position(epoch, it), metrics, self.length.unit, self.skipped))
            if self.tb:
                for k, v in metrics.items():
                    self.tb.add_scalar(k, v, it)
        return metrics

    def metric_key(self, metrics: dict[str, float]) -> str | None:
        """``train.best_metric``, or the first metric of an evaluator whose metric names are not known."""
        return self.best_metric if self.best_metric in metrics else next(iter(metrics), None)

    def is_best(self, metrics: dict[str, float], epoch: int, it: int) -> bool:
        """True (and ``best`` updated) when ``metrics`` beat the best so far (higher is better)."""
        key = self.metric_key(metrics)
        if key is None:
            return False
        value = metrics[key]
        if math.isnan(value) or (self.best and value <= self.best["value"]):
            return False
        self.best = {"metric": key, "value": value, "epoch": self.length.epoch_of(epoch, it), "iter": it}
        where = f"{self.length.unit} {self.length.position(epoch, it)}"
        log_to_file("new best %s = %.4f at %s: best.pth", key, value, where)
        return True

    def write_report(self) -> None:
        """PR curves and confusion matrix of the new best evaluation (rank 0); a failure is only a warning."""
        write = getattr(self.evaluator, "write_report", None)
        if not self.main or not callable(write):
            return
        try:
            written = write(self.work_dir)
            if written:
                log_to_file("evaluation plots: %s", ", ".join(p.name for p in written))
        except Exception as e:  # noqa: BLE001  (a plot must never stop training)
            logger.warning("could not write the evaluation plots (%s: %s); training continues", type(e).__name__, e)


def call_eval_callbacks(callbacks: list, position: int, metrics: dict[str, float], main: bool) -> str | None:
    """Rank 0 calls each eval callback with ``(epoch or iteration, metrics)``; the first reason to stop one returns
    (or an error one raises) reaches every rank, so that all stop at the same point. Returns the reason or None."""
    outcome: str | BaseException | None = None
    if main:
        try:
            for callback in callbacks:
                outcome = callback(position, dict(metrics)) or None
                if outcome:
                    break
        except Exception as e:  # noqa: BLE001  (raised below on every rank)
            outcome = e
    outcome = dist.broadcast_object(outcome)
    if isinstance(outcome, BaseException):
        raise outcome
    return str(outcome) if outcome else None
