"""Autocast contexts that also work where torch has no autocast for a device (MPS before torch 2.5, whose
``torch.autocast("mps", ...)`` raises even with ``enabled=False``)."""

from __future__ import annotations

import contextlib

import torch


def autocast_available(device_type: str) -> bool:
    """Whether this torch has autocast for ``device_type`` (torch < 2.4 cannot tell: CPU and CUDA only)."""
    check = getattr(torch.amp, "is_autocast_available", None)
    return bool(check(device_type)) if check is not None else device_type in ("cpu", "cuda")


def autocast(device_type: str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """An autocast region of ``dtype`` on ``device_type``; nothing for None (float32: no region to open)."""
    return contextlib.nullcontext() if dtype is None else torch.autocast(device_type, dtype=dtype)


def autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    """Float32 inside an autocast region: ``torch.autocast(device_type, enabled=False)``, or nothing where torch
    has no autocast for the device (no region can be open there)."""
    return torch.autocast(device_type, enabled=False) if autocast_available(device_type) else contextlib.nullcontext()
