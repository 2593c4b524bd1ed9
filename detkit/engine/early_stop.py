"""Early stopping (``train.patience``): end a run after N evaluations without a new best ``train.best_metric``."""

from __future__ import annotations

from detkit.engine.validation import EvalCallback, Validator


def evaluations_since_best(validator: Validator) -> int:
    """Evaluations recorded in ``metrics.jsonl`` after the best one (all of them when none was a best yet).

    Read from the run's record, so a resumed run goes on counting where the interrupted one stopped.
    """
    best_epoch = validator.best.get("epoch", 0) if validator.best else 0
    epochs = {r["epoch"] for r in validator.record.metrics() if isinstance(r.get("epoch"), int)}
    return sum(1 for e in epochs if e > best_epoch)


def patience_stop(validator: Validator, patience: int) -> EvalCallback:
    """An eval callback (``Trainer(eval_callbacks=...)``) that returns the reason to stop once ``patience``
    evaluations in a row brought no new best of the validator's metric; None before that."""

    def check(epoch: int, metrics: dict) -> str | None:
        waited = evaluations_since_best(validator)
        if waited < patience:
            return None
        best = validator.best
        where = f"best {best['metric']} {best['value']:.4f} at epoch {best['epoch']}" if best else "no valid metric yet"
        return f"no new best in {waited} evaluations (train.patience {patience}; {where})"

    return check
