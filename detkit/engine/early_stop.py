"""Early stopping (``train.patience``): end a run after N evaluations without a new best ``train.best_metric``."""

from __future__ import annotations

from detkit.engine.validation import EvalCallback, Validator


def evaluations_since_best(validator: Validator) -> int:
    """Evaluations recorded in ``metrics.jsonl`` after the best one (all of them when none was a best yet).

    Read from the run's record, so a resumed run goes on counting where the interrupted one stopped.
    """
    best_iter = validator.best.get("iter", -1) if validator.best else -1
    iters = {r["iter"] for r in validator.record.metrics() if isinstance(r.get("iter"), int)}
    return sum(1 for it in iters if it > best_iter)


def patience_stop(validator: Validator, patience: int) -> EvalCallback:
    """An eval callback (``Trainer(eval_callbacks=...)``) that returns the reason to stop once ``patience``
    evaluations in a row brought no new best of the validator's metric; None before that."""

    def check(epoch: int, metrics: dict) -> str | None:
        waited = evaluations_since_best(validator)
        if waited < patience:
            return None
        best = validator.best
        length = validator.length
        at = f"{length.unit} {best[length.key]}" if best else ""
        where = f"best {best['metric']} {best['value']:.4f} at {at}" if best else "no valid metric yet"
        return f"no new best in {waited} evaluations (train.patience {patience}; {where})"

    return check
