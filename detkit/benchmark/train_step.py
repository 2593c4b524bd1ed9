"""Timing training steps (``tools/benchmark.py --task train``): an SGD step, its autocast twin (``--amp``) and the
interleaved run of detkit's step against the peer's, compiled and autocast twins included.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from detkit.benchmark.harness import AMP, PEER_AMP, RunSettings, add_compiled, compiled_copy, measure
from detkit.utils.amp import autocast

StepOf = Callable[[nn.Module, torch.dtype | None], Callable[[], float]]  # (model, autocast dtype) -> a step


def sgd_step(
    model: nn.Module, loss_fn: Callable[[], dict], amp_dtype: torch.dtype | None = None
) -> Callable[[], float]:
    """A closure running forward (``loss_fn``), backward and an SGD step; returns the summed loss.

    SGD with lr 1e-5, momentum 0.9, weight decay 1e-4 over the parameters that require grad. With
    ``amp_dtype`` the forward and loss run under ``torch.autocast`` of the model's device (backward outside it,
    as the trainer does), fp16 with a gradient scaler.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-5, momentum=0.9, weight_decay=1e-4)
    device_type = params[0].device.type if params else "cpu"
    scaler = torch.amp.GradScaler(device_type, enabled=amp_dtype == torch.float16)

    def step() -> float:
        with autocast(device_type, amp_dtype):  # as the trainer's step (detkit.engine.step)
            losses = loss_fn()
            total = sum(v.float() for v in losses.values())
        opt.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.step(opt)
        scaler.update()
        return float(total.detach())

    return step


def add_amp(
    fns: dict[str, Callable[[], object]],
    dtype: torch.dtype,
    detkit: tuple[nn.Module, StepOf],
    peer: tuple[nn.Module, StepOf] | None,
    first: dict[str, float],
    peer_name: str | None,
) -> dict:
    """Add detkit's training step under ``dtype`` autocast (:data:`AMP`) and the peer's under the same
    (:data:`PEER_AMP`) to ``fns``: each pair is (a copy of the model with the fp32 run's starting weights, a
    function making its step); ``first`` holds the fp32 first-step losses by name.

    Returns ``{'dtype', 'diff'}`` for :func:`~detkit.benchmark.harness.result_row`: the first autocast losses
    against the fp32 ones.
    """
    fns[AMP] = detkit[1](detkit[0], dtype)
    diff = f"first-step loss {fns[AMP]():.6g} vs fp32 {first['detkit']:.6g}"
    if peer is not None:
        fns[PEER_AMP] = peer[1](peer[0], dtype)
        diff += f" (the peer's: {fns[PEER_AMP]():.6g} vs {first[peer_name]:.6g})"
    return {"dtype": "bf16" if dtype == torch.bfloat16 else "fp16", "diff": diff}


def time_training(
    settings: RunSettings,
    device: torch.device,
    detkit: tuple[nn.Module, StepOf],
    peer: tuple[str, nn.Module, StepOf] | None = None,
) -> tuple[dict[str, list[float]], dict, dict[str, float], dict | None, dict | None]:
    """Time detkit's training step and the peer's (``(name, model, step_of)``, on the device, in train mode)
    interleaved, with the compiled (``settings.compile``) and autocast (``settings.amp``) twins, all starting
    from the same weights. ``step_of(model, dtype)`` makes a step (dtype None: fp32).

    Returns ``(times, mem, first, compiled, amp)``: :func:`~detkit.benchmark.harness.measure`'s figures, each
    model's first-step loss (that step is also the warm-up), and the twins' results for ``result_row``.
    """
    from detkit.engine.runtime import resolve_amp

    dk, dk_step = detkit
    # a bad value, or bf16 on a GPU without it, is an error before any step; fp16 on a CPU warns and times nothing
    dtype = resolve_amp(settings.amp, device) if settings.amp else None
    fns: dict[str, Callable[[], object]] = {"detkit": dk_step(dk, None)}
    if peer is not None:
        fns[peer[0]] = peer[2](peer[1], None)
    dkc = compiled_copy(dk, settings)  # copies before the first step: the same weights
    amp_models = [copy.deepcopy(m) for m in (dk, *(peer[1:2] if peer else ()))] if dtype is not None else []
    first = {k: float(fn()) for k, fn in fns.items()}
    compiled = add_compiled(fns, dkc, lambda m: dk_step(m, None), lambda: first["detkit"], device)
    amp = None
    if dtype is not None:
        peer_pair = (amp_models[1], peer[2]) if peer else None
        amp = add_amp(fns, dtype, (amp_models[0], dk_step), peer_pair, first, peer[0] if peer else None)
    times, mem = measure(fns, settings, device, warmup=max(0, settings.warmup - 1))
    return times, mem, first, compiled, amp
