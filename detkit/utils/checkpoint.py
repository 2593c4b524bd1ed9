"""Reading checkpoints safely (``weights_only=True``) with messages that name the file and the fix."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import torch


class CheckpointError(ValueError):
    """A file given as a checkpoint cannot be used as one; the message names the file and the fix."""


def _sniff(path: Path) -> str | None:
    """Why ``path`` cannot be a torch checkpoint, judged from its first bytes (None when it may be one)."""
    size = path.stat().st_size
    if size == 0:
        return "is empty (0 bytes); it was not written completely. Use another checkpoint (e.g. latest.pth)"
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(b"PK"):
        if not zipfile.is_zipfile(path):
            return (
                f"is truncated or corrupt ({size} bytes, the archive's directory is missing); the copy or "
                "the save was cut short. Copy it again or use another checkpoint"
            )
        return None
    if head[:1] == b"\x80":  # legacy (non-zip) torch.save / pickle
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "is not a PyTorch checkpoint (unknown binary content)"
    if any(k in text for k in ("_base_:", "model:", "data:", "type:")):
        return (
            "is a YAML config, not a checkpoint; did you swap the arguments? The tools take CONFIG first, "
            "then CHECKPOINT"
        )
    return "is a text file, not a PyTorch checkpoint"


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Read a detkit checkpoint with ``weights_only=True`` and return ``{'model': state_dict, 'meta': {...}, ...}``.

    A bare state dict (tensors only) becomes ``{'model': it, 'meta': {}}``. Raises ``FileNotFoundError`` for
    a missing file and :class:`CheckpointError` (a ``ValueError``) for anything that is not a checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder; give a .pth file in it (e.g. {path / 'best.pth'})")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    why = _sniff(path)
    if why:
        raise CheckpointError(f"checkpoint {path} {why}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001  (pickle / zip errors have many types)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(e).__name__}: {first}). detkit reads "
            "checkpoints with weights_only=True; convert foreign weights with "
            "tools/convert_weights.py"
        ) from e
    if isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict):
        ckpt.setdefault("meta", {})
        return ckpt
    if isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return {"model": ckpt, "meta": {}}
    if isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict):
        return {**ckpt, "model": ckpt["state_dict"], "meta": ckpt.get("meta") or {}}
    raise CheckpointError(
        f"checkpoint {path} holds a {type(ckpt).__name__} without a 'model' state dict; it is "
        "not a detkit checkpoint (convert foreign weights with tools/convert_weights.py)"
    )


def model_state(ckpt: dict) -> dict:
    """The model state dict of a detkit checkpoint (``model``) or of a bare / foreign one (``state_dict``)."""
    for key in ("model", "state_dict"):
        if key in ckpt and isinstance(ckpt[key], dict):
            return ckpt[key]
    if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return ckpt
    raise ValueError("checkpoint has no 'model' (or 'state_dict') entry with weights")
