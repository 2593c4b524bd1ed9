"""The measuring machinery shared by the model benchmarks: run settings, interleaved timing, peak memory,
compiled twins and the result row (``tools/benchmark.py --task infer|train``); the training step and its
autocast twin are in :mod:`detkit.benchmark.train_step`.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

Log = Callable[[str], None]


@dataclass
class RunSettings:
    """How a benchmark runs: ``iters`` timed turns after ``warmup`` untimed ones, on ``device`` (None: CUDA
    when available, else the CPU); ``log`` receives the check lines. With ``compile`` a copy of detkit's model
    compiled by :func:`detkit.models.compile.compile_model` (``compile_backend``, ``compile_mode``) runs too,
    interleaved with the others (:func:`add_compiled`). With ``amp`` ('bf16' | 'fp16', as ``train.amp``) training
    rows also time detkit's step under that autocast, and the peer's under the same
    (:func:`detkit.benchmark.train_step.add_amp`)."""

    iters: int = 5
    warmup: int = 1
    device: str | None = None
    log: Log = field(default=print)
    compile: bool = False
    compile_backend: str = "inductor"
    compile_mode: str | None = None
    amp: str | None = None


COMPILED = "detkit_compiled"  # the key of detkit's compiled model among the timed functions
AMP = "detkit_amp"  # detkit's training step under autocast (``RunSettings.amp``)
PEER_AMP = "peer_amp"  # the peer's training step under the same autocast
VARIANTS = (COMPILED, AMP, PEER_AMP)  # the timed functions that are not one of the two models as they come


def resolve_device(device: str | None) -> torch.device:
    """``device``, or CUDA when available, else the CPU; a CUDA request without a GPU is an error."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch.cuda.is_available() is False; use --device cpu")
    return dev


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(
    fns: dict[str, Callable[[], object]], iters: int, warmup: int, device: torch.device
) -> dict[str, list[float]]:
    """Seconds per call of each function, run in turns (A B A B ...) after ``warmup`` untimed turns."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(warmup + iters):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def median_ms(times: list[float]) -> float:
    """The median of ``times`` (seconds) in milliseconds."""
    return 1e3 * statistics.median(times)


def _proc_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_cpu_peak() -> bool:
    """Release free heap pages (glibc ``malloc_trim``) and reset the peak RSS (Linux ``clear_refs``)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_memory(fn: Callable[[], object], device: torch.device) -> tuple[float | None, str]:
    """Peak extra memory (MiB) of one call of ``fn`` and how it was measured.

    CUDA: ``torch.cuda.max_memory_allocated`` minus the memory allocated before the call. CPU: the rise of
    the process's peak resident set (``VmHWM`` after resetting it via ``/proc/self/clear_refs``) over the
    resident set before the call, after ``malloc_trim`` returned free heap pages; None where that is
    unavailable (not Linux).
    """
    if device.type == "cuda":
        _sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        _sync(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20, "cuda max_memory_allocated"
    if not _reset_cpu_peak():
        fn()
        return None, "unavailable (needs Linux /proc/self/clear_refs)"
    base = _proc_kb("VmRSS")
    fn()
    peak = _proc_kb("VmHWM")
    if base is None or peak is None:
        return None, "unavailable"
    return (peak - base) / 1024, "peak RSS delta"


def measure(
    fns: dict[str, Callable[[], object]], settings: RunSettings, device: torch.device, warmup: int | None = None
) -> tuple[dict[str, list[float]], dict[str, tuple[float | None, str]]]:
    """Interleaved times (``settings.iters`` after ``warmup``, default ``settings.warmup``) and the peak
    memory of one more call, per function."""
    times = time_interleaved(fns, settings.iters, settings.warmup if warmup is None else warmup, device)
    return times, {k: peak_memory(fn, device) for k, fn in fns.items()}


def compiled_copy(model: nn.Module, settings: RunSettings, inference: bool = False) -> nn.Module | None:
    """With ``settings.compile``, a copy of ``model`` with its dense parts compiled (else None); make it before
    the first training step so that both start from the same weights. ``inference``: fixed weights, compiled
    with ``freeze=True`` (as tools/infer.py and tools/eval.py would)."""
    if not settings.compile:
        return None
    from detkit.models.compile import compile_model

    mode, backend = settings.compile_mode, settings.compile_backend
    return compile_model(copy.deepcopy(model), mode=mode, backend=backend, freeze=inference and backend == "inductor")


def add_compiled(
    fns: dict[str, Callable[[], object]],
    compiled: nn.Module | None,
    make_fn: Callable[[nn.Module], Callable[[], object]],
    reference: Callable[[], object],
    device: torch.device,
) -> dict | None:
    """Time the first call of ``make_fn(compiled)`` (compilation included: what a user pays once), then add
    that function to ``fns`` as :data:`COMPILED`; nothing and None when ``compiled`` is None.

    Returns ``{'compile_s', 'diff', 'parts'}``: ``diff`` compares the first output with ``reference()``
    (eager's output for the same input, or eager's first training-step loss).
    """
    if compiled is None:
        return None
    fn = make_fn(compiled)
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    compile_s = time.perf_counter() - start
    fns[COMPILED] = fn
    from detkit.models.compile import compiled_parts

    return {"compile_s": compile_s, "diff": output_difference(reference(), out), "parts": compiled_parts(compiled)}


def predict_rows(
    model: nn.Module, batch: dict, settings: RunSettings, device: torch.device
) -> tuple[dict[str, Callable[[], object]], Callable[[], object], dict | None]:
    """The detkit rows of an inference benchmark: ``model.predict(batch)[0]`` under ``inference_mode``, and its
    compiled twin with ``settings.compile`` (:func:`compiled_copy`, :func:`add_compiled`).

    Returns ``(fns, run, compiled)``: ``fns`` = ``{'detkit': run}`` (plus :data:`COMPILED`), ``run`` the eager
    function, ``compiled`` :func:`add_compiled`'s result (None without ``settings.compile``).
    """

    def predictor(m: nn.Module) -> Callable[[], object]:
        def run():
            with torch.inference_mode():
                return m.predict(batch)[0]

        return run

    run = predictor(model)
    fns: dict[str, Callable[[], object]] = {"detkit": run}
    compiled = add_compiled(fns, compiled_copy(model, settings, inference=True), predictor, run, device)
    return fns, run, compiled


def _tensors(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for k in sorted(out) for t in _tensors(out[k])]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in _tensors(o)]
    return [torch.tensor(float(out))] if isinstance(out, (int, float)) else []


def output_difference(ref, out) -> str:
    """The largest absolute difference over the tensors (or numbers) of two outputs, as text; for detections
    (dicts with ``boxes``) the count matched within 1 px (``detkit.benchmark.rcnn.compare_detections``)."""
    if isinstance(ref, dict) and isinstance(out, dict) and "boxes" in ref and "boxes" in out:
        from detkit.benchmark.rcnn import compare_detections

        r = compare_detections(ref, out)
        return (
            f"detections {r['n_ref']} vs {r['n_out']}, {r['matched']} matched within 1 px "
            f"(max box diff {r['box_diff']:.2g} px, score {r['score_diff']:.2g})"
        )
    a, b = _tensors(ref), _tensors(out)
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        return f"shapes differ: {[tuple(x.shape) for x in a][:4]} vs {[tuple(y.shape) for y in b][:4]}"
    diff = max((float((x.double() - y.double()).abs().max()) for x, y in zip(a, b) if x.numel()), default=0.0)
    return f"max abs diff {diff:.2g}"


def result_row(
    task: str,
    model: str,
    device: torch.device,
    shape: str,
    times: dict[str, list[float]],
    mem: dict[str, tuple[float | None, str]],
    check: str,
    compiled: dict | None = None,
    amp: dict | None = None,
) -> dict:
    """One result: median ms and peak MiB of ``detkit`` and of the peer (the key of ``times`` other than
    ``detkit`` and :data:`COMPILED`, if any), their ratios (detkit / peer), and the check line.

    With ``compiled`` (:func:`add_compiled`'s result) the row also has ``compiled_ms``, ``compiled_ratio``
    (compiled / peer), ``compiled_vs_eager`` (compiled / eager), ``compiled_mem_mb``, ``compile_s`` and
    ``compiled_check``. With ``amp``: ``amp_ms``, ``amp_ratio`` (against the peer as
    it comes, fp32), ``amp_vs_eager``, ``amp_peer_ms`` / ``amp_peer_ratio`` (the peer under the same autocast),
    ``amp_mem_mb`` and ``amp_check`` (:func:`detkit.benchmark.train_step.add_amp`'s result).
    """
    peer = next((k for k in times if k != "detkit" and k not in VARIANTS), None)
    ms = {k: median_ms(v) for k, v in times.items()}
    dk_mem, peer_mem = mem["detkit"][0], mem[peer][0] if peer else None
    row = {
        "task": task,
        "model": model,
        "device": str(device),
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "input": shape,
        "iters": len(times["detkit"]),
        "peer": peer,
        "detkit_ms": ms["detkit"],
        "peer_ms": ms.get(peer),
        "ratio": ms["detkit"] / ms[peer] if peer else None,
        "detkit_mem_mb": dk_mem,
        "peer_mem_mb": peer_mem,
        "mem_ratio": dk_mem / peer_mem if dk_mem and peer_mem else None,
        "mem_method": mem["detkit"][1],
        "check": check,
    }
    if compiled is not None:
        row.update(
            compiled_ms=ms[COMPILED],
            compiled_ratio=ms[COMPILED] / ms[peer] if peer else None,
            compiled_vs_eager=ms[COMPILED] / ms["detkit"],
            compiled_mem_mb=mem[COMPILED][0],
            compile_s=compiled["compile_s"],
            compiled_check=f"compiled {', '.join(compiled['parts']) or 'nothing'}: vs eager {compiled['diff']}; "
            f"first call {compiled['compile_s']:.1f} s",
        )
    if amp is not None:
        peer_amp = ms.get(PEER_AMP)
        row.update(
            amp_dtype=amp["dtype"],
            amp_ms=ms[AMP],
            amp_ratio=ms[AMP] / ms[peer] if peer else None,
            amp_vs_eager=ms[AMP] / ms["detkit"],
            amp_peer_ms=peer_amp,
            amp_peer_ratio=ms[AMP] / peer_amp if peer_amp else None,
            amp_mem_mb=mem[AMP][0],
        )
        row["amp_check"] = (
            f"autocast {amp['dtype']}: {amp['diff']}; {amp['dtype']} / fp32 (detkit) {row['amp_vs_eager']:.2f}"
        )
        if peer_amp:
            row["amp_check"] += f"; peer under the same autocast {peer_amp:.0f} ms (ratio {row['amp_peer_ratio']:.2f})"
    return row
