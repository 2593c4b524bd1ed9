"""How long a run is and where it stops to checkpoint and evaluate: in epochs (``train.max_epochs``) or in
iterations (``train.max_iters``, as MMSegmentation's iteration-based recipes; docs/training.md).

An iteration is one batch of ``data.batch_size`` per process (with ``train.accumulate: k``, k iterations make an
optimizer step), the unit of ``iter`` in checkpoints, ``metrics.jsonl`` and the LR schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class RunLength:
    """The run's length and its evaluation / checkpoint points.

    Args:
        iters_per_epoch: batches per pass over data.train (per process).
        max_epochs: ``train.max_epochs`` (the length when ``max_iters`` is None).
        max_iters: ``train.max_iters``: the run stops after exactly this many iterations, mid-epoch if need be.
        eval_interval: ``train.eval_interval``: evaluate every N epochs, or N iterations with ``max_iters``;
            None: every epoch, or every ``max(1, max_iters // 10)`` iterations. The last epoch / iteration
            always evaluates.
        checkpoint_interval: ``train.checkpoint_interval``: keep ``epoch_N.pth`` every N epochs, or
            ``iter_N.pth`` every N iterations with ``max_iters`` (None: none).
    """

    iters_per_epoch: int
    max_epochs: int
    max_iters: int | None = None
    eval_interval: int | None = None
    checkpoint_interval: int | None = None

    @classmethod
    def from_config(cls, tcfg: dict, iters_per_epoch: int) -> RunLength:
        """From the resolved ``train`` section."""
        return cls(
            int(iters_per_epoch),
            int(tcfg["max_epochs"]),
            tcfg.get("max_iters"),
            tcfg.get("eval_interval"),
            tcfg.get("checkpoint_interval"),
        )

    @property
    def by_iter(self) -> bool:
        """True for an iteration-based run (``train.max_iters`` set)."""
        return self.max_iters is not None

    @property
    def key(self) -> str:
        """``iter`` or ``epoch``: the key of ``metrics.jsonl`` rows and of ``best`` that counts the run."""
        return "iter" if self.by_iter else "epoch"

    @property
    def unit(self) -> str:
        """``iteration`` or ``epoch``, for messages."""
        return "iteration" if self.by_iter else "epoch"

    @property
    def total(self) -> int:
        """``max_iters`` or ``max_epochs``."""
        return int(self.max_iters) if self.by_iter else self.max_epochs

    @property
    def total_iters(self) -> int:
        """Iterations of the whole run (the LR schedule's length)."""
        return int(self.max_iters) if self.by_iter else self.max_epochs * self.iters_per_epoch

    @property
    def epochs(self) -> int:
        """Passes over the data the run starts (the last one may end early), e.g. for close_mosaic."""
        return math.ceil(self.total_iters / self.iters_per_epoch)

    @property
    def every(self) -> int:
        """Epochs or iterations between two evaluations."""
        if self.eval_interval is not None:
            return max(1, int(self.eval_interval))
        return max(1, self.total // 10) if self.by_iter else 1

    def position(self, epoch: int, it: int) -> int:
        """The iteration (iteration-based run) or the epoch."""
        return it if self.by_iter else epoch

    def done(self, epoch: int, it: int) -> bool:
        """True once the run has reached its length."""
        return self.position(epoch, it) >= self.total

    def eval_due(self, epoch: int, it: int) -> bool:
        """True when an evaluation is due after ``epoch`` / iteration ``it`` (every ``every`` and the last)."""
        pos = self.position(epoch, it)
        return pos > 0 and (pos >= self.total or pos % self.every == 0)

    def checkpoint_name(self, epoch: int, it: int) -> str | None:
        """``epoch_N.pth`` / ``iter_N.pth`` when ``checkpoint_interval`` keeps this point, else None."""
        ci, pos = self.checkpoint_interval, self.position(epoch, it)
        if not ci or pos <= 0 or pos % int(ci):
            return None
        return f"{self.key}_{pos}.pth"

    def is_point(self, it: int) -> bool:
        """Iteration-based run: True when iteration ``it`` evaluates, keeps a checkpoint or ends the run (an
        optimizer step ends there); always False for an epoch-based run."""
        return self.by_iter and (self.eval_due(0, it) or self.checkpoint_name(0, it) is not None)

    def epoch_of(self, epoch: int, it: int) -> float | int:
        """The ``epoch`` of a metrics row: the epoch, or the passes over the data done (iteration-based run)."""
        return round(it / self.iters_per_epoch, 4) if self.by_iter else epoch

    def describe(self) -> str:
        """One line for the start of training: the length, the evaluation and checkpoint points."""
        ckpt = f", {self.key}_N.pth every {self.checkpoint_interval}" if self.checkpoint_interval else ""
        if not self.by_iter:
            return f"{self.max_epochs} epochs ({self.iters_per_epoch} iterations per epoch){ckpt}"
        how = "train.eval_interval" if self.eval_interval is not None else "max_iters // 10 (train.eval_interval unset)"
        return (
            f"{self.max_iters} iterations (train.max_iters; train.max_epochs {self.max_epochs} is not used), "
            f"{self.iters_per_epoch} per pass over data.train ({self._passes()}); "
            f"latest.pth and evaluation every {self.every} iterations ({how}) and at the last{ckpt}"
        )

    def _passes(self) -> str:
        passes = self.total_iters / self.iters_per_epoch
        return f"{passes:.4g} pass" + ("" if passes == 1 else "es")

    def schedule_note(self, schedule) -> tuple[str, bool] | None:
        """Iteration-based run: the LR schedule's length, warm-up and milestone iterations in one line, and
        whether a milestone falls at or past the end (never reached: a warning); None for an epoch-based run."""
        if not self.by_iter:
            return None
        line = f"LR schedule: {schedule.type} over {schedule.max_iters} iterations, warm-up {schedule.warmup_iters}"
        late = False
        if schedule.type == "multistep" and schedule.milestones:
            its = schedule.milestone_iters
            late = any(m >= schedule.max_iters for m in its)
            line += (
                f", LR x{schedule.gamma:g} at iterations {its} (scheduler.milestones {schedule.milestones} count "
                f"epochs of {self.iters_per_epoch} iterations)"
            )
            if late:
                line += "; a milestone at or past train.max_iters is never reached: set scheduler.milestones"
        return line, late
