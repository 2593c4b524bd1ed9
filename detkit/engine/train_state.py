"""What a trainer writes into its checkpoints and reads back on resume.

``latest.pth`` (and ``epoch_N.pth``) hold everything an exact resume needs: weights, optimizer, scheduler,
scaler, EMA, RNG states, position. ``best.pth`` holds what inference and fine-tuning need: the weights
(``model``; the EMA weights when ``train.ema`` is set, with the trained ones in ``model_raw``) and ``meta``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import detkit
from detkit.engine import builders, dist
from detkit.engine.checkpoint import get_rng_state, load_checkpoint, set_rng_state
from detkit.engine.optim import LRSchedule
from detkit.engine.preflight import PreflightError
from detkit.engine.resume_data import check_resume_data
from detkit.utils.checkpoint import CheckpointError, load_model_state

logger = logging.getLogger("detkit")

WEIGHT_KEYS = ("model", "model_raw", "meta")  # what best.pth keeps
RESUME_ONLY_META = ("iter_in_epoch", "nonfinite", "world_size")  # position and counters of a run in progress


def training_state(tr) -> dict:
    """The whole state of trainer ``tr`` (every rank must call: the RNG states are gathered)."""
    rng = dist.all_gather_object(get_rng_state())
    meta = {
        "config": tr.cfg,
        "class_names": list(tr.model.class_names),
        "epoch": tr.epoch,
        "iter": tr.iter,
        "iter_in_epoch": tr.iter_in_epoch,
        "version": detkit.__version__,
        "world_size": tr.world,
        "best": tr.best,
        "nonfinite": tr.nonfinite,
        "cat_ids": builders.model_cat_ids(tr.train_set),  # with a painted background's id first
    }
    state = {
        "model": (tr.ema.module if tr.ema else tr.model).state_dict(),
        "meta": meta,
        "optimizer": tr.optimizer.state_dict(),
        "scheduler": tr.schedule.state_dict(),
        "scaler": tr.scaler.state_dict(),
        "ema": tr.ema.state_dict() if tr.ema else None,
        "rng": rng,
    }
    if tr.ema:
        state["model_raw"] = tr.model.state_dict()
    return state


def weights_state(state: dict) -> dict:
    """The part of a training state that inference and fine-tuning need (best.pth)."""
    out = {k: state[k] for k in WEIGHT_KEYS if k in state}
    out["meta"] = {k: v for k, v in state["meta"].items() if k not in RESUME_ONLY_META}
    return out


def _load_resumable(path: Path) -> dict:
    ckpt = load_checkpoint(path)
    if "optimizer" not in ckpt or "rng" not in ckpt:
        raise CheckpointError(
            f"{path} holds weights only (like best.pth), not a training state; resume from latest.pth, or "
            f"start a new run from these weights with --load-from {path}"
        )
    return ckpt


def _restore_weights(tr, ckpt: dict, path: Path) -> None:
    state = ckpt["model_raw"] if ckpt.get("model_raw") is not None else ckpt["model"]
    hint = "Resume with the config of that run (its work dir's config.yaml), or start anew with --load-from"
    load_model_state(tr.model, state, str(path), hint)  # counts what fits, names what does not
    if tr.ema:
        tr.ema.load_state_dict(
            ckpt["ema"] or {"updates": 0}, ckpt["model"] if ckpt.get("ema") else tr.model.state_dict()
        )


def _optimizer_type(meta: dict, state: dict) -> str | None:
    """The optimizer type of a checkpoint's run: its config's ``optimizer.type`` (engine default SGD), else told
    from its parameter groups' keys (Adam's ``betas``, SGD's ``momentum``); None when neither says."""
    from detkit.engine.optim import OPTIMIZER_DEFAULTS

    cfg = meta.get("config") if isinstance(meta.get("config"), dict) else None
    if cfg is not None and isinstance(cfg.get("optimizer"), dict):
        return str(cfg["optimizer"].get("type") or OPTIMIZER_DEFAULTS["type"])
    groups = state.get("param_groups") or [{}]
    return "Adam/AdamW" if "betas" in groups[0] else "SGD" if "momentum" in groups[0] else None


def _check_optimizer_type(tr, ckpt: dict, path: Path) -> None:
    """Refuse a checkpoint written by another kind of optimizer than the config's (an SGD run resumed with an AdamW
    config): SGD's momentum buffers are not Adam's moments and steps (torch's load fails with ``KeyError: 'step'``)."""
    state = ckpt["optimizer"] if isinstance(ckpt.get("optimizer"), dict) else {}
    old, new = _optimizer_type(ckpt.get("meta") or {}, state), type(tr.optimizer).__name__
    if old is None or old.startswith("Adam") == new.startswith("Adam"):  # (Adam and AdamW keep the same state)
        return
    n_old, n_new = len(state.get("param_groups") or ()), len(tr.optimizer.param_groups)
    raise PreflightError(
        f"{path} was trained with optimizer {old} ({n_old} parameter group(s)) and the config gives {new} "
        f"({n_new}): the optimizer state does not carry over to another optimizer. Resume with the run's config "
        f"({path.parent / 'config.yaml'}, or --set optimizer.type={old.split('/')[-1]}), or start a new run from "
        f"its weights with --load-from {path}"
    )


def _restore_optimizer(tr, ckpt: dict, path: Path) -> None:
    _check_optimizer_type(tr, ckpt, path)
    fresh = [g["initial_lr"] for g in tr.optimizer.param_groups]
    try:
        tr.optimizer.load_state_dict(ckpt["optimizer"])
    except (ValueError, KeyError) as e:
        raise ValueError(
            f"{path}: the optimizer state does not fit ({e}); were optimizer.lr_mult or the "
            "decay settings changed? Start anew with --load-from to keep the weights"
        ) from e
    for g, lr in zip(tr.optimizer.param_groups, fresh):
        g["initial_lr"] = lr  # the config in force decides the LR, the checkpoint the momentum
    if ckpt.get("scaler"):
        tr.scaler.load_state_dict(ckpt["scaler"])


def _restore_rng(tr, rng: list) -> None:
    if len(rng) == tr.world:
        set_rng_state(rng[tr.rank])
        return
    (logger.warning if tr.main else logger.debug)(  # the same on every process: said once
        "checkpoint was written by %d process(es), this run has %d: RNG states are not "
        "restored, the resumed run is not bit-exact",
        len(rng),
        tr.world,
    )


def _images_per_iter(world: int, cfg: dict | None) -> int:
    """Images one iteration (micro-batch) takes over all processes: processes x data.batch_size."""
    data = (cfg or {}).get("data") if isinstance(cfg, dict) else None
    return int(world) * int((data or {}).get("batch_size", 1) or 1)


def _convert_position(tr, meta: dict) -> bool:
    """Move the restored position to this run's iterations when the checkpoint's run took another number of
    images per iteration (another process count or batch size): the same number of images into the epoch,
    rounded down to an accumulation boundary, so the sampler starts inside the epoch; an epoch-based run's
    iteration count (and so its LR schedule) is re-counted in this run's iterations. True when it moved."""
    old = _images_per_iter(meta.get("world_size") or tr.world, meta.get("config"))
    new, acc = _images_per_iter(tr.world, tr.cfg), int(tr.tcfg["accumulate"])
    if old == new:
        return False
    seen = tr.iter_in_epoch * old
    tr.iter_in_epoch = min(seen // (new * acc) * acc, tr.iters_per_epoch)
    if not tr.length.by_iter:
        tr.iter = tr.epoch * tr.iters_per_epoch + tr.iter_in_epoch
        if isinstance(tr.best, dict) and isinstance(tr.best.get("epoch"), int):
            tr.best = {**tr.best, "iter": tr.best["epoch"] * tr.iters_per_epoch}
    (logger.warning if tr.main else logger.debug)(  # the same on every process: said once
        "the checkpoint's run took %d images per iteration (%d process(es) x data.batch_size), this one takes %d: "
        "resuming %d images into epoch %d (iteration %d of its %d; %d image(s) trained again)%s; the LR follows "
        "this run's total batch (the lr line above)",
        old, meta.get("world_size") or tr.world, new, tr.iter_in_epoch * new, tr.epoch + 1, tr.iter_in_epoch,
        tr.iters_per_epoch, seen - tr.iter_in_epoch * new,
        "" if tr.length.by_iter else f", at iteration {tr.iter} of the schedule's {tr.length.total_iters}",
    )  # fmt: skip
    return True


def restore_training_state(tr, path: Path) -> None:
    """Resume trainer ``tr`` from the training state in ``path`` (weights, optimizer, position, RNG). Other data
    than the run's is refused unless ``tr.allow_data_change`` (:mod:`detkit.engine.resume_data`); then the best so
    far is dropped (``tr.data_changed`` set), since it was measured on the old data."""
    ckpt = _load_resumable(path)
    meta = ckpt["meta"]
    _restore_weights(tr, ckpt, path)  # first: another model's checkpoint is named as such
    changes = check_resume_data(tr, meta, path, tr.allow_data_change)
    _restore_optimizer(tr, ckpt, path)
    tr.epoch, tr.iter, tr.iter_in_epoch = meta["epoch"], meta["iter"], meta["iter_in_epoch"]
    tr.best, tr.nonfinite = meta.get("best") or {}, meta.get("nonfinite", 0)
    if changes:
        _forget_best(tr, changes)
    converted = _convert_position(tr, meta)
    tr.resumed_at = (meta["iter"], converted and not tr.length.by_iter)  # the records are re-counted with it
    if not converted:  # (another batch per iteration: the old schedule counted other iterations)
        for line in tr.schedule.compare(LRSchedule.from_state(ckpt["scheduler"]), tr.base_lr, tr.iter):
            logger.info(line)
    _restore_rng(tr, ckpt.get("rng") or [])
    logger.info(  # epochs counted from 1, as the stop message and the epoch lines count them
        "resumed from %s: epoch %d, iteration %d (%d into the epoch)", path, tr.epoch + 1, tr.iter, tr.iter_in_epoch
    )


def _forget_best(tr, changes: list[str]) -> None:
    """``allow_data_change``: say what changed and drop the best measured on the old data (best.pth is kept aside
    when the work dir is claimed)."""
    best = tr.best
    was = f"{best.get('metric')} {best['value']:.4f}, " if isinstance(best, dict) and "value" in best else ""
    (logger.warning if tr.main else logger.debug)(
        "resuming on other data (allow_data_change): %s; the best so far (%smeasured on the old data) is not compared "
        "with: the next evaluation writes best.pth, the run's best.pth is kept as best.before-resume-N.pth",
        "; ".join(changes), was,
    )  # fmt: skip
    tr.best, tr.data_changed = {}, True


def nothing_to_do(tr) -> bool:
    """Whether trainer ``tr``, resumed at (or past) its run's end with that point's evaluation done, has nothing to
    run: then fit() writes no file (not config.yaml, metrics.jsonl, log.txt). Every rank must call (a broadcast)."""
    length, epoch, in_epoch = tr.length, tr.epoch, tr.iter_in_epoch
    if length.by_iter and in_epoch >= tr.iters_per_epoch:  # stopped after an epoch's last batch (as fit rolls over)
        epoch, in_epoch = epoch + 1, 0
    if tr.resumed_at is None or not length.done(epoch, tr.iter):
        return False
    moved = getattr(tr, "moves_previous", False)  # the work dir's metrics.jsonl is another run's, moved aside
    rows = (tr.record.kept_metrics(tr.resumed_at, tr.iters_per_epoch) if not moved else []) if tr.main else None
    return not tr.validator.pending(epoch, tr.iter, in_epoch, rows)


def nothing_done(tr) -> dict[str, float]:
    """Say that trainer ``tr`` has nothing to run (:func:`nothing_to_do`); the last evaluation's metrics (from
    metrics.jsonl; {} when none)."""
    length, key = tr.length, f"train.max_{tr.length.key}s"
    logger.info(
        "nothing to do: the checkpoint is at %s %d and %s is %d (raise %s to extend the run)",
        length.unit, length.position(tr.epoch, tr.iter), key, length.total, key,
    )  # fmt: skip
    rows = tr.record.metrics() if tr.main else []
    last = rows[-1] if rows else {}  # (its "skipped" counts are not metrics)
    return {k: v for k, v in last.items() if k not in ("epoch", "iter") and isinstance(v, (int, float))}


def non_finite_note(model, names: list[str], iteration: int) -> str | None:
    """Why the checkpoints ``names`` are not written at ``iteration``: some parameter or buffer of ``model`` is no
    longer finite (a diverging run: resuming from it would fail at once); None when all are finite."""
    import torch

    tensors = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
    if all(bool(torch.isfinite(t).all()) for t in tensors):
        return None
    return f"{', '.join(names)} not written at iteration {iteration}: the weights are no longer finite; the last checkpoint stays"
