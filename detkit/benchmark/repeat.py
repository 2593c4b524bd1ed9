"""Benchmark rows measured in several fresh processes (``tools/benchmark.py --repeat K``) and their medians.

A peer's time moves between processes more than within one (Ultralytics' yolo_s training step took 4.46-5.20 s
across processes on an idle machine, its fused yolo_n forward 79-100 ms), so a ratio from one process can be
5-8% off. Each process still times detkit and the peer interleaved; the reported ratio is the median of the
per-process ratios, so a row's ratio can differ a little from its two median times' quotient.
"""

from __future__ import annotations

import multiprocessing
import statistics
from collections.abc import Callable
from typing import Any

RATIO_KEYS = ("ratio", "compiled_ratio", "amp_ratio")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def median_rows(runs: list[list[dict]]) -> list[dict]:
    """One list of rows from the same rows measured in ``len(runs)`` processes: every number the median over
    the processes (ratios: the median of the per-process ratios), the rest (names, check line) from the first
    process; ``iters`` says ``"N x K processes"`` and the check line lists each process's ratios."""
    if len({len(rows) for rows in runs}) != 1:
        raise RuntimeError(f"the processes measured different rows: {[len(rows) for rows in runs]}")
    out = []
    for rows in zip(*runs):
        row = dict(rows[0])
        for key in row:
            values = [r.get(key) for r in rows]
            if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                row[key] = statistics.median_low(values)  # counts (threads) stay integers
            elif all(_number(v) for v in values):
                row[key] = statistics.median(values)
        row["iters"] = f"{rows[0]['iters']} x {len(rows)} processes"
        per_process = [
            f"{key.replace('ratio', '').strip('_') or 'eager'} " + ", ".join(f"{r[key]:.2f}" for r in rows)
            for key in RATIO_KEYS
            if all(_number(r.get(key)) for r in rows)
        ]
        if per_process:
            row["check"] = f"{row['check']}; ratio per process: {'; '.join(per_process)}"
        out.append(row)
    return out


def rows_in_processes(fn: Callable[..., list[dict]], args: tuple, times: int, log: Callable[[str], None]) -> list[dict]:
    """Call ``fn(*args)`` (a module-level function returning rows) in ``times`` fresh processes, one after the
    other (spawned: nothing of this process's allocator or thread pool state carries over), and return
    :func:`median_rows` of their rows. An exception in a process is raised here."""
    ctx = multiprocessing.get_context("spawn")
    runs = []
    for i in range(times):
        log(f"process {i + 1} of {times}")
        with ctx.Pool(1) as pool:
            runs.append(pool.apply(fn, args))
    return median_rows(runs)
