"""Reading checkpoints safely (``weights_only=True``) with messages that name the file and the fix.

Every tool reads checkpoints (and other torch files given by a user) through :func:`read_torch_file` /
:func:`load_checkpoint`: the file is sniffed first (:func:`file_kind`), so an empty, truncated, text, YAML,
JSON, image, ONNX or random file is named as what it is, with the fix, instead of a pickle error. The sniff
needs no torch, so a tool can check its inputs before it pays for importing torch.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "CheckpointNotFoundError",
    "check_checkpoint_file",
    "file_kind",
    "load_checkpoint",
    "load_model_state",
    "model_state",
    "read_meta",
    "read_torch_file",
]

CONVERT_HINT = "convert foreign weights with detkit convert-weights"


class CheckpointError(ValueError):
    """A file given as a checkpoint cannot be used as one; the message names the file and the fix."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist (also a ``FileNotFoundError``)."""


class CheckpointMismatchError(CheckpointError):
    """A readable checkpoint that does not fit the model (other classes, other architecture)."""


_MAGIC = (
    (b"\x89PNG", "image"),
    (b"\xff\xd8\xff", "image"),
    (b"GIF8", "image"),
    (b"BM", "image"),
    (b"II*\x00", "image"),
    (b"MM\x00*", "image"),
)


def _text_kind(head: bytes) -> str:
    """'yaml', 'json' or 'text' for a UTF-8 beginning; 'binary' when it is not text."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:  # a multi-byte character cut at the end of the sniffed block is still text
        if e.start < len(head) - 4:
            return "binary"
        text = head[: e.start].decode("utf-8")
    if any(ch in text for ch in "\x00\x01\x02\x03\x04\x05\x06\x07\x0e\x0f\x10\x11\x12\x13\x14\x15"):
        return "binary"
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        return "json"
    lines = [ln for ln in stripped.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if lines and all(":" in ln or ln.lstrip().startswith("- ") for ln in lines[:5]):
        return "yaml"
    return "text"


def file_kind(path: str | os.PathLike) -> str:
    """What a file is, judged from its first bytes (no torch needed).

    Returns one of ``'missing'``, ``'folder'``, ``'empty'``, ``'torch-zip'`` (a ``torch.save`` archive),
    ``'truncated-zip'``, ``'zip'`` (an archive that is not a torch file), ``'pickle'`` (legacy torch.save),
    ``'python-pickle'`` (``pickle.dump`` of Python objects), ``'safetensors'``, ``'onnx'``, ``'image'``, ``'yaml'``, ``'json'``, ``'text'``, ``'binary'``.
    """
    path = Path(path)
    if path.is_dir():
        return "folder"
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if size == 0:
        return "empty"
    with open(path, "rb") as f:
        head = f.read(4096)
    if head.startswith(b"PK"):
        if not zipfile.is_zipfile(path):
            return "truncated-zip"
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError):
            return "truncated-zip"
        return "torch-zip" if any(n.endswith("data.pkl") for n in names) else "zip"
    if head[:2] == b"\x80\x02":  # pickle protocol 2: torch.save's legacy (non-zip) format
        return "pickle"
    if head[:1] == b"\x80" and len(head) > 1 and 3 <= head[1] <= 5:
        return "python-pickle"
    if len(head) > 10 and head[8:10] == b'{"' and int.from_bytes(head[:8], "little") < size:
        return "safetensors"
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if path.suffix.lower() == ".onnx":
        return "onnx"
    return _text_kind(head)


_WHY = {
    "empty": "is empty (0 bytes): it was not written completely; use another checkpoint (e.g. latest.pth or best.pth)",
    "truncated-zip": "is truncated or corrupt (the end of the archive is missing): a copy or a save was cut short; "
    "copy it again or use another checkpoint",
    "zip": "is a zip archive but not a PyTorch checkpoint (it holds no data.pkl)",
    "python-pickle": "is a plain Python pickle, not a torch.save file; detkit reads checkpoints with "
    "weights_only=True so that a file never runs code: save the state dict with torch.save",
    "safetensors": "is a safetensors file; detkit reads torch .pth checkpoints: " + CONVERT_HINT,
    "onnx": "is an ONNX model, not a PyTorch checkpoint; give the .pth file it was exported from",
    "image": "is an image, not a PyTorch checkpoint; did you swap the arguments? The order is CONFIG CHECKPOINT "
    "then the inputs",
    "yaml": "is a YAML file (a config?), not a checkpoint; did you swap the arguments? The order is CONFIG "
    "then CHECKPOINT",
    "json": "is a JSON file, not a PyTorch checkpoint; give the .pth file written by training (e.g. "
    "work_dirs/<run>/best.pth)",
    "text": "is a text file, not a PyTorch checkpoint; give the .pth file written by training",
    "binary": "is not a PyTorch checkpoint (unknown binary content); give the .pth file written by training",
}


def check_checkpoint_file(path: str | os.PathLike, what: str = "checkpoint") -> Path:
    """Raise :class:`CheckpointError` unless ``path`` may be a torch file (cheap: reads the first bytes only)."""
    path = Path(path)
    kind = file_kind(path)
    if kind == "missing":
        raise CheckpointNotFoundError(f"{what} not found: {path} (check the path)")
    if kind == "folder":
        pths = sorted(p.name for p in path.glob("*.pth"))
        hint = f" (it holds {', '.join(pths[:4])})" if pths else " (it holds no .pth file)"
        raise CheckpointError(f"{what} {path} is a folder; give a .pth file in it, e.g. {path / 'best.pth'}{hint}")
    if kind in ("yaml", "image") and what != "checkpoint":  # a flag or a config key: no argument order to swap
        raise CheckpointError(
            f"{what} {path} is {'a YAML file' if kind == 'yaml' else 'an image'}, not a "
            "PyTorch checkpoint; give the .pth file written by training (e.g. work_dirs/<run>/best.pth)"
        )
    if kind in _WHY:
        raise CheckpointError(f"{what} {path} {_WHY[kind]}")
    return path


def _torch_load_error(path: Path, e: Exception, what: str) -> CheckpointError:
    """A one-line message for an exception of ``torch.load`` on a file that looked like a torch file."""
    text = str(e).split("WeightsUnpickler error:", 1)[-1]
    cause = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(e).__name__)
    cause = cause.split("] ", 1)[-1].split(". ")[0].strip(" .")[:160]  # drop c10's '[enforce fail at ...]'
    if "Unsupported global" in cause:
        return CheckpointError(
            f"{what} {path} holds Python objects, not only tensors ({cause}); detkit reads checkpoints with "
            f"weights_only=True so that a file never runs code: re-save only its state dict, or {CONVERT_HINT}"
        )
    return CheckpointError(
        f"{what} {path} is corrupt or not a PyTorch file ({type(e).__name__}: {cause}); copy it again or use "
        "another checkpoint"
    )


def read_torch_file(
    path: str | os.PathLike, map_location: Any = "cpu", what: str = "checkpoint", mmap: bool = False
) -> Any:
    """``torch.load(path, weights_only=True)`` after :func:`check_checkpoint_file`; every failure is a
    :class:`CheckpointError` (``CheckpointNotFoundError`` for a missing file) naming the file and the fix.

    ``mmap`` maps the tensors of a zip checkpoint instead of reading them (cheap when only ``meta`` is needed).
    """
    import pickle

    import torch

    path = check_checkpoint_file(path, what)
    try:
        mmap = mmap and file_kind(path) == "torch-zip"
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile, KeyError) as e:
        raise _torch_load_error(path, e, what) from e


def _is_state_dict(obj: Any) -> bool:
    import torch

    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Read a detkit checkpoint with ``weights_only=True`` and return ``{'model': state_dict, 'meta': {...}, ...}``.

    A bare state dict (tensors only) becomes ``{'model': it, 'meta': {}}``, a ``{'state_dict': ...}`` file
    (MMDetection, Lightning) ``{'model': its state dict, 'meta': ...}``. Raises :class:`CheckpointError` (a
    ``ValueError``; :class:`CheckpointNotFoundError`, also a ``FileNotFoundError``, for a missing file) for
    anything that is not a checkpoint.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"load_checkpoint: path must be a file path, got {type(path).__name__}")
    ckpt = read_torch_file(path, map_location)
    if isinstance(ckpt, dict) and isinstance(ckpt.get("model"), Mapping):
        if not isinstance(ckpt.get("meta") or {}, Mapping):
            raise CheckpointError(f"checkpoint {path}: 'meta' is a {type(ckpt['meta']).__name__}, not a dict")
        ckpt["meta"] = dict(ckpt.get("meta") or {})
        return ckpt
    if _is_state_dict(ckpt):
        return {"model": ckpt, "meta": {}}
    if isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), Mapping):
        return {**ckpt, "model": ckpt["state_dict"], "meta": dict(ckpt.get("meta") or {})}
    keys = f" with keys {', '.join(map(str, list(ckpt)[:5]))}" if isinstance(ckpt, dict) else ""
    raise CheckpointError(
        f"checkpoint {path} holds a {type(ckpt).__name__}{keys}, not a model state dict; it is not a detkit "
        f"checkpoint ({CONVERT_HINT})"
    )


def read_meta(path: str | os.PathLike) -> dict:
    """The ``meta`` dict of a checkpoint (class names, config, epoch, ...), its tensors memory-mapped, not read."""
    ckpt = read_torch_file(path, mmap=True)
    meta = ckpt.get("meta") if isinstance(ckpt, dict) else None
    return dict(meta) if isinstance(meta, Mapping) else {}


def model_state(ckpt: dict) -> dict:
    """The model state dict of a detkit checkpoint (``model``) or of a bare / foreign one (``state_dict``)."""
    for key in ("model", "state_dict"):
        if key in ckpt and isinstance(ckpt[key], Mapping):
            return ckpt[key]
    if _is_state_dict(ckpt):
        return ckpt
    raise CheckpointError("checkpoint has no 'model' (or 'state_dict') entry with weights")


def _examples(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (", ..." if len(items) > n else "")


def state_mismatch(own: Mapping, state: Mapping) -> str | None:
    """How ``state`` fails to fit the state dict ``own`` key by key and shape by shape ("N of M tensors fit, K of
    another shape (e.g. ...), K missing (...), K unexpected (...)"), or None when it fits exactly."""
    shape = [k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if not (shape or missing or unexpected):
        return None
    parts = []
    if shape:
        k = shape[0]
        parts.append(
            f"{len(shape)} of another shape (e.g. {k}: checkpoint {list(state[k].shape)}, model {list(own[k].shape)})"
        )
    if missing:
        parts.append(f"{len(missing)} missing ({_examples(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({_examples(unexpected)})")
    fit = len(own) - len(missing) - len(shape)
    return f"{fit} of {len(own)} tensors fit, {'; '.join(parts)}"


def load_model_state(model: Any, state: Mapping, source: str, hint: str = "") -> None:
    """``model.load_state_dict(state)`` that accepts only a full fit; otherwise a :class:`CheckpointMismatchError`.

    The message counts the tensors that fit, names those of another shape (with both shapes) and the
    missing / unexpected ones (:func:`state_mismatch`), then ``hint`` (e.g. which config to use).
    """
    detail = state_mismatch(model.state_dict(), state)
    if detail is not None:
        raise CheckpointMismatchError(
            f"checkpoint {source} does not fit the model: {detail}. "
            + (hint or "Use the config the checkpoint was trained with (CONFIG '-' takes the one it stores)")
        )
    model.load_state_dict(state)
