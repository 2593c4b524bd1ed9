"""Run-time helpers of the training loop: AMP dtype, seeding, moving batches, sampler epochs, divergence."""

from __future__ import annotations

import logging
import os
import random
from typing import Any

import numpy as np
import torch

from detkit.config import ConfigError
from detkit.engine import dist
from detkit.utils.amp import autocast_available

logger = logging.getLogger("detkit")


class TrainingDiverged(RuntimeError):
    """Raised after ``train.max_nonfinite`` non-finite losses in a row."""


def move_batch(batch: dict, device: torch.device) -> dict:
    """Move the tensors of a batch (``images`` and each target's tensors) to ``device``."""
    out = dict(batch)
    if isinstance(out.get("images"), torch.Tensor):
        out["images"] = out["images"].to(device, non_blocking=True)
    if "targets" in out:
        out["targets"] = [
            {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in t.items()}
            for t in out["targets"]
        ]
    return out


def draw_seeds(seed: int, iteration: int, slots: list[int]) -> list[int]:
    """A 64-bit seed per image from ``(seed, global iteration, the image's index in the global batch)``."""
    return [int(np.random.SeedSequence([seed, iteration, s]).generate_state(1, np.uint64)[0]) for s in slots]


def join_global_batch(batch: dict | None, step: dict, device: torch.device) -> tuple[dict | None, bool]:
    """Make this process's share of a step behave as its images would in one process over the global batch.

    ``step`` holds ``seed``, ``iteration`` (global), ``rank``, ``batch_size`` (per process) and ``world``.
    One all-reduce (max) over the processes gives the padded (H, W) of the global batch and whether any
    process has no batch (every sample of it left out). The batch gains ``pad_size`` (that (H, W), for
    ``Preprocessor``), ``draw_seeds`` (per image, from ``(seed, iteration, rank * batch_size + slot)``: the
    model's random draws) and ``sync_loss_counts`` (under DDP: loss normalisers counted over all processes,
    ``detkit.ops.global_batch``).

    Returns:
        the batch with those keys (None stays None) and True when some process has no batch, in which case
        no process runs the step (the model's collectives need every process).
    """
    images = batch.get("images") if batch is not None else None
    shape = tuple(images.shape[-2:]) if isinstance(images, torch.Tensor) else (0, 0)
    flags = torch.tensor([*shape, float(batch is None)], device=device if dist.is_dist() else "cpu")
    reduced = dist.all_reduce_max(flags).tolist()
    if batch is None or reduced[2] > 0:
        return batch, reduced[2] > 0
    first = step["rank"] * step["batch_size"]
    slots = batch.get("batch_slots") or range(len(batch.get("image_sizes") or []))
    out = dict(batch)
    out["pad_size"] = (int(reduced[0]), int(reduced[1]))
    out["draw_seeds"] = draw_seeds(step["seed"], step["iteration"], [first + int(s) for s in slots])
    out["sync_loss_counts"] = step["world"] > 1
    return out, False


def resolve_amp(amp: Any, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``train.amp`` (false | true | 'fp16' | 'bf16') on ``device``; None = fp32."""
    if amp in (None, False, "false", "none", "fp32"):
        return None
    if amp not in (True, "fp16", "bf16"):
        raise ConfigError(f"train.amp={amp!r}: use false, true (fp16 on CUDA), 'fp16' or 'bf16'")
    if device.type != "cuda":
        if amp == "bf16":
            if not autocast_available(device.type):
                raise ConfigError(
                    f"train.amp=bf16: torch {torch.__version__} has no autocast on {device.type} "
                    "(MPS: torch >= 2.5); use train.amp=false"
                )
            if device.type == "cpu" and not cpu_has_fast_bf16():
                logger.warning(
                    "train.amp=bf16 on a CPU without the AVX-512 / bf16 instructions oneDNN uses for bf16: "
                    "it runs emulated and may be slower than fp32 (measure: tools/benchmark.py --task train --amp bf16)"
                )
            return torch.bfloat16
        logger.warning(
            "AMP fp16 needs CUDA; training in fp32 on %s (set train.amp=bf16 for bf16 autocast on CPU)", device
        )
        return None
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        raise ConfigError("train.amp=bf16: this GPU has no bf16 support; use train.amp=fp16")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def cpu_has_fast_bf16() -> bool:
    """Whether oneDNN runs bf16 convolutions and matmuls natively on this CPU (AVX-512 or the ARM bf16
    extension), per torch's own check; True when torch cannot tell."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (every device); optionally ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def deterministic_flags() -> tuple:
    """torch's determinism settings now (deterministic algorithms and warn-only, cuDNN benchmark / deterministic),
    for :func:`restore_deterministic_flags` after a training that changed them (``deterministic=True``)."""
    return (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )


def restore_deterministic_flags(flags: tuple) -> None:
    """Put back the settings :func:`deterministic_flags` took."""
    enabled, warn_only, benchmark, cudnn_deterministic = flags
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = benchmark, cudnn_deterministic


def set_sampler_epoch(loader, epoch: int, start_iter: int) -> bool:
    """Tell the loader's samplers the epoch and first batch; False when they cannot skip batches."""
    skipped = start_iter == 0
    for s in (getattr(loader, "batch_sampler", None), getattr(loader, "sampler", None)):
        if hasattr(s, "set_epoch"):
            s.set_epoch(epoch)
        if hasattr(s, "set_start_iter"):
            s.set_start_iter(start_iter)
            skipped = True
    return skipped
