"""A watch over the logged training losses: every term collapsed to zero while the batches held objects.

A learning rate far too high can throw a detector so far off that nothing is learnt any more, with finite weights
(so the non-finite guard says nothing) and ``loss 0.0000`` to the end of the run. Measured with a tiny YOLO on the
shapes data at ``optimizer.lr=1000``: after two steps every class logit is below -1e5, so every score is exactly 0;
the task-aligned assigner's metric (score^alpha x IoU^beta) is then 0 for every anchor inside an object, so their
soft targets are 0 (no positive target, ``score.sum() == 0``); the box and DFL losses, weighted by those targets,
are 0, and the BCE of "no object anywhere" against all-zero targets is 0 too. A log window whose every term is
(near) zero while its batches held objects is that collapse; a window of empty images (nothing to learn: the
losses may well reach zero) and a healthy run (its losses never do) are not.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("detkit")

COLLAPSED = 1e-6  # a mean loss term below this is shown as 0.0000: nothing is learnt from it any more


def count_objects(batch: dict | None) -> int:
    """Ground-truth boxes in a batch's ``targets`` (0 for None, or for targets without boxes: class labels,
    semantic maps)."""
    if not batch:
        return 0
    return sum(len(t["boxes"]) for t in batch.get("targets") or () if t.get("boxes") is not None)


class CollapseWatch:
    """Counts the steps and objects of the current log window; :meth:`check` warns once per run when a window's
    losses all collapsed to zero although its batches held objects."""

    def __init__(self) -> None:
        self.steps = self.objects = 0
        self.warned = False

    def add(self, objects: int) -> None:
        """One step whose losses were recorded; ``objects``: its ground-truth boxes (over every process)."""
        self.steps, self.objects = self.steps + 1, self.objects + int(objects)

    def check(self, losses: dict[str, float], tr) -> str | None:
        """At a log point: ``losses`` are the window's mean terms (averaged over the processes); ``tr`` the
        trainer (iteration, learning rates). Starts the next window; returns the warning when it is given."""
        steps, objects, self.steps, self.objects = self.steps, self.objects, 0, 0
        if self.warned or not losses or objects == 0 or any(abs(v) >= COLLAPSED for v in losses.values()):
            return None
        self.warned = True
        message = collapse_message(tr.iter, steps, objects, tr._lr, tr.cfg["optimizer"]["lr"])
        if tr.main:
            logger.warning("%s", message)
        return message


def collapse_message(it: int, steps: int, objects: int, lr: float, optimizer_lr: float) -> str:
    """The warning of a collapse at iteration ``it``: the window's ``steps`` and ``objects``, the learning rate
    in use ``lr`` and the config's ``optimizer.lr``."""
    return (
        f"training losses collapsed to 0 at iteration {it}: every loss term averaged 0.0000 over the last {steps} "
        f"iteration(s) although their batches held {objects} object(s), so nothing is learnt from them (the model "
        "scores every class 0 everywhere, or its boxes miss every object, so no anchor or proposal gets a positive "
        f"target). The likely cause is a learning rate far too high: lr {lr:.4g} now (optimizer.lr {optimizer_lr:g}). "
        "Start a new run (another --work-dir, or --exist-ok) with optimizer.lr 10x to 100x lower (the packaged "
        "detection configs use 0.001 to 0.02); resuming this one would go on from the collapsed weights"
    )
