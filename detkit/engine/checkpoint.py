"""Checkpoints: atomic save, ``weights_only=True`` load, RNG states as tensors, tolerant weight loading."""

from __future__ import annotations

import contextlib
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
    """Write ``state`` with ``torch.save`` atomically (temporary file + fsync + ``os.replace``)."""
    atomic_write(path, lambda f: torch.save(state, f))


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


def load_weights(model: nn.Module, state: dict, source: str = "checkpoint") -> dict[str, list[str]]:
    """Load matching tensors of ``state`` into ``model``; drop those whose shapes differ, report the rest.

    Returns ``{"missing": [...], "unexpected": [...], "mismatched": [...]}`` and logs each list.
    """
    own = model.state_dict()
    state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}
    mismatched = [
        f"{k}: {tuple(v.shape)} in {source}, {tuple(own[k].shape)} in model"
        for k, v in state.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    keep = {k: v for k, v in state.items() if not (k in own and tuple(v.shape) != tuple(own[k].shape))}
    result = model.load_state_dict(keep, strict=False)
    report = {
        "missing": list(result.missing_keys),
        "unexpected": list(result.unexpected_keys),
        "mismatched": mismatched,
    }
    if mismatched:
        logger.info(
            "dropped %d tensor(s) whose shapes differ (e.g. class-specific layers; they keep "
            "their fresh initialisation): %s",
            len(mismatched),
            "; ".join(mismatched),
        )
    if report["missing"]:
        logger.info("missing in %s (%d): %s", source, len(report["missing"]), ", ".join(report["missing"]))
    if report["unexpected"]:
        logger.info("unexpected in %s (%d): %s", source, len(report["unexpected"]), ", ".join(report["unexpected"]))
    return report
