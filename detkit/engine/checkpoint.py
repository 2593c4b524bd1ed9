"""Checkpoints: atomic save, ``weights_only=True`` load, RNG states as tensors, tolerant weight loading."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random

import numpy as np
import torch
from torch import nn

from detkit.utils.checkpoint import CheckpointError, load_checkpoint, model_state  # noqa: F401  (re-exported)
from detkit.utils.files import atomic_write  # noqa: F401  (re-exported)

logger = logging.getLogger("detkit")


def save_checkpoint(state: dict, path: str | os.PathLike) -> None:
    """Write ``state`` with ``torch.save`` atomically (temporary file + fsync + ``os.replace``); a disk that fills
    up is said as such (torch's zip writer reports it as "unexpected pos ..."), the previous file kept."""
    try:
        atomic_write(path, lambda f: torch.save(state, f))
    except (RuntimeError, OSError) as e:
        full = getattr(e, "errno", None) == errno.ENOSPC or "unexpected pos" in str(e)
        if not full:
            raise
        import shutil

        free = shutil.disk_usage(os.path.dirname(os.path.abspath(path)) or ".").free
        raise OSError(
            errno.ENOSPC,
            f"no space left on the device while writing {path} ({free / 2**20:.0f} MiB free); the previous "
            "checkpoint of that name is kept: free some space (or set train.checkpoint_interval: null to keep fewer "
            "epoch_N.pth), then resume",
        ) from e


def get_rng_state() -> dict:
    """Every RNG state (python, numpy, torch CPU, CUDA) as tensors / lists that ``weights_only`` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": _python_state_to_list(random.getstate()),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


@contextlib.contextmanager
def preserve_rng():
    """Run a block without disturbing any global RNG (python, numpy, torch CPU and CUDA).

    The trainer wraps data-loader iterator creation and evaluation in it, so the training RNG stream
    depends only on the training steps done: the property exact resume needs.
    """
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


def _python_state_to_list(s: tuple) -> list:
    version, internal, gauss = s
    return [version, list(internal), gauss]


def set_rng_state(state: dict) -> None:
    """Restore the states written by :func:`get_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


class LoadFromError(CheckpointError):
    """``--load-from`` weights that share too few tensors with the model to be a start for it."""


def _strip_module(state: dict) -> dict:
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}


def load_weights(
    model: nn.Module, state: dict, source: str = "checkpoint", mismatch_note: str | None = None
) -> dict[str, list[str]]:
    """Load matching tensors of ``state`` into ``model``; drop those whose shapes differ, report the rest.

    Returns ``{"loaded", "missing", "unexpected", "mismatched"}`` (lists of names; ``mismatched`` entries
    say both shapes; ``missing`` includes the mismatched names). Logs short lines (see :func:`log_load_report`);
    ``mismatch_note`` replaces the start of the warning about the mismatched tensors (before their modules).
    """
    own = model.state_dict()
    state = _strip_module(state)
    differs = [k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    mismatched = [f"{k}: {tuple(state[k].shape)} in {source}, {tuple(own[k].shape)} in model" for k in differs]
    keep = {k: v for k, v in state.items() if k not in set(differs)}
    result = model.load_state_dict(keep, strict=False)
    report = {
        "loaded": [k for k in keep if k in own],
        "missing": list(result.missing_keys),
        "unexpected": list(result.unexpected_keys),
        "mismatched": mismatched,
    }
    log_load_report(report, source, mismatch_note)
    return report


def log_load_report(report: dict[str, list[str]], source: str, mismatch_note: str | None = None) -> None:
    """The tensors of :func:`load_weights`' report as counts grouped by module (``head.cls_branch (36)``): a
    WARNING for those dropped for their shape (``mismatch_note`` first, when given), INFO for the missing (other
    than those) and the unexpected ones; every name (and both shapes) at DEBUG level."""
    differs = [m.split(":", 1)[0] for m in report["mismatched"]]
    if differs:
        note = (
            mismatch_note
            or f"dropped {len(differs)} tensor(s) whose shapes differ (they keep their fresh initialisation)"
        )
        logger.warning("%s: %s", note, _parts(differs))
        logger.debug("tensors of other shapes (%d): %s", len(differs), "; ".join(report["mismatched"]))
    dropped = set(differs)
    missing = [k for k in report["missing"] if k not in dropped]  # the dropped ones were said above
    for what, names in (("missing in", missing), ("unexpected in", report["unexpected"])):
        if names:
            logger.info("%s %s: %d tensor(s): %s", what, source, len(names), _parts(names))
            logger.debug("%s %s (%d): %s", what, source, len(names), ", ".join(names))


def _parts(names: list[str], depth: int = 2) -> str:
    """``backbone.layer1 (12), neck (8)``: tensor names grouped by their module, cut to ``depth`` components."""
    counts: dict[str, int] = {}
    for n in names:
        key = ".".join(n.split(".")[:-1][:depth]) or n
        counts[key] = counts.get(key, 0) + 1
    shown = [f"{k} ({v})" for k, v in list(counts.items())[:8]]
    return ", ".join(shown) + (f", ... ({len(counts) - 8} more)" if len(counts) > 8 else "")


def _shown(names: list[str], count: int = 5) -> str:
    return ", ".join(names[:count]) + (", ..." if len(names) > count else "")


def load_pretrained(model: nn.Module, path: str | os.PathLike, min_fraction: float = 0.5) -> dict[str, list[str]]:
    """``--load-from``: load the tensors of checkpoint ``path`` that fit ``model`` (see :func:`load_weights`).

    Raises :class:`LoadFromError` when fewer than ``min_fraction`` of the model's tensors match by name and
    shape (another model's checkpoint would otherwise start a run from scratch unnoticed). Warns when the
    checkpoint's class count differs from the model's, with the re-initialised tensors counted by module (each
    one at DEBUG level).
    """
    ckpt = load_checkpoint(path)
    state = _strip_module(model_state(ckpt))
    own = model.state_dict()
    fits = [k for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)]
    if len(fits) < min_fraction * len(own):
        skipped = [k for k in own if k not in set(fits)]
        backbone = [k for k in state if k.startswith("backbone.")]
        fix = (
            f"a classifier's (or other backbone's) weights initialise the backbone alone: --set "
            f"model.backbone.init_checkpoint={path} (docs/classification.md)"
            if backbone and all(k.startswith(("backbone.", "head.")) for k in state)
            else "give weights of this model, or convert foreign ones with detkit convert-weights"
        )
        raise LoadFromError(
            f"--load-from {path}: only {len(fits)} of the model's {len(own)} tensors match it by name and shape "
            f"(skipped: {_parts(skipped)}); it is not a checkpoint of this config's model. The fix: {fix}"
        )
    logger.info("loading weights from %s: %d of %d tensors fit the model", path, len(fits), len(own))
    names = list((ckpt.get("meta") or {}).get("class_names") or [])
    ours = list(getattr(model, "class_names", []) or [])
    note = None
    if names and ours and len(names) != len(ours):
        differ = sum(1 for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape))
        note = (
            f"--load-from {path} has {len(names)} classes ({_shown(names)}), the config {len(ours)} ({_shown(ours)}): "
            + (
                f"{differ} tensor(s) of other shapes are re-initialised"
                if differ
                else "no tensor's shape depends on it"
            )
        )
    report = load_weights(model, state, source=str(path), mismatch_note=note)
    if note and not report["mismatched"]:  # else the note starts the warning about them
        logger.warning("%s", note)
    return report
