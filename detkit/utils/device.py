"""``--device`` as PyTorch users type it: ``cpu``, ``cuda``, ``cuda:1``, ``0``, ``0,1``, ``mps``; clear errors."""

from __future__ import annotations

import torch


class DeviceError(ValueError):
    """A ``--device`` value that names no device of this machine; the message says what exists."""


def _available() -> str:
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    names = ["cpu"] + (["cuda"] + [f"cuda:{i}" for i in range(n)] if n else [])
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        names.append("mps")
    return ", ".join(names)


def parse_device(
    device: str | int | torch.device | None, multi: bool = False, flag: str = "--device"
) -> torch.device | list[torch.device]:
    """Turn a user's device string into ``torch.device`` (a list with ``multi`` for ``'0,1'``).

    ``None`` or ``''`` picks CUDA when available, else CPU. A bare index ``'1'`` means ``cuda:1``. A list of
    indices is accepted only with ``multi=True`` (one process per device is started by torchrun, not here).
    Raises :class:`DeviceError` for a device that does not exist here; its message names the value as ``flag``
    (``--device`` for the tools, ``device`` for a library argument: ``device='cuda'``).
    """
    given = f"{flag} {device}" if flag.startswith("-") else f"{flag}={device!r}"
    use_cpu = f"{flag} cpu" if flag.startswith("-") else f"{flag}='cpu'"
    if isinstance(device, torch.device):
        device = str(device)
    text = "" if device is None else str(device).strip().lower()
    if text in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) > 1:
        if not multi:
            raise DeviceError(
                f"{given}: one device per process; for several GPUs start one process per "
                f"GPU with `torchrun --nproc-per-node {len(parts)} ...` and --device cuda "
                f"(CUDA_VISIBLE_DEVICES={text} selects them)"
            )
        return [parse_device(p, flag=flag) for p in parts]
    one = parts[0]
    if one.isdigit():
        one = f"cuda:{one}"
    try:
        dev = torch.device(one)
    except (RuntimeError, ValueError):
        raise DeviceError(f"{given}: not a device name; use one of: {_available()}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"{given}: CUDA is not available on this machine; use {use_cpu}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"{given}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0..cuda:{torch.cuda.device_count() - 1})"
            )
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceError(f"{given}: MPS (Apple GPU) is not available here; use one of: {_available()}")
    elif dev.type != "cpu":
        raise DeviceError(f"{given}: detkit runs on cpu, cuda or mps; available here: {_available()}")
    return dev
