"""Checks of the library API's arguments (``predict``, ``explain``, ``track``): a wrong type or value is a
``TypeError`` / ``ValueError`` that names the function, the argument, what was given and what is accepted."""

from __future__ import annotations

import numbers
import os
from typing import Any

from torch import nn

__all__ = ["check_channel_order", "check_count", "check_model", "check_score_thr"]


def _given(value: Any) -> str:
    if isinstance(value, nn.Module) or (
        isinstance(value, (list, tuple)) and any(isinstance(v, nn.Module) for v in value)
    ):
        return (
            type(value).__name__
            if isinstance(value, nn.Module)
            else f"a list of {', '.join(type(v).__name__ for v in value)}"
        )
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def check_model(model: Any, who: str) -> None:
    """``model`` is a detkit model (an ``nn.Module`` with ``predict``), or a non-empty list of them (an ensemble)."""
    items = model if isinstance(model, (list, tuple)) else [model]
    for item in items or [None]:
        if not isinstance(item, nn.Module) or not callable(getattr(item, "predict", None)):
            hint = (
                "; load a checkpoint with detkit.init_model(config, checkpoint) first"
                if isinstance(item, (str, os.PathLike))
                else ""
            )
            raise TypeError(
                f"{who}: model must be a detkit model (from detkit.init_model) or a list of them, got "
                f"{_given(model)}{hint}"
            )


def check_score_thr(value: Any, who: str) -> float | None:
    """``score_thr``: None (the config's test threshold) or a number in [0, 1]."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{who}: score_thr must be a number in [0, 1] or None (the config's), got {_given(value)}")
    if not 0.0 <= float(value) <= 1.0:  # NaN fails too
        raise ValueError(f"{who}: score_thr must be in [0, 1] (or None: the config's), got {value}")
    return float(value)


def check_count(value: Any, name: str, who: str) -> int:
    """An integer argument such as ``batch_size`` or ``max_dets``: an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{who}: {name} must be an int >= 1, got {_given(value)}")
    if value < 1:
        raise ValueError(f"{who}: {name} must be >= 1, got {value}")
    return int(value)


def check_channel_order(value: Any, who: str) -> str:
    """``channel_order``: ``'rgb'`` or ``'bgr'`` (any case)."""
    if not isinstance(value, str) or value.lower() not in ("rgb", "bgr"):
        raise ValueError(f"{who}: channel_order must be 'rgb' or 'bgr', got {value!r}")
    return value.lower()
