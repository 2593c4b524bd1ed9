"""detkit.benchmark.repeat: the medians of rows measured in several processes."""

from __future__ import annotations

import pytest

from detkit.benchmark.repeat import median_rows


def _row(ms: float, peer_ms: float, threads: int = 2, compiled_ms: float | None = None) -> dict:
    row = {
        "task": "train",
        "threads": threads,
        "iters": 5,
        "detkit_ms": ms,
        "peer_ms": peer_ms,
        "ratio": ms / peer_ms,
        "detkit_mem_mb": None,
        "check": "first-step loss 1.0",
    }
    if compiled_ms is not None:
        row.update(compiled_ms=compiled_ms, compiled_ratio=compiled_ms / peer_ms)
    return row


def test_median_of_each_figure_and_of_the_per_process_ratios():
    runs = [[_row(100, 125, compiled_ms=90)], [_row(110, 120, compiled_ms=99)], [_row(90, 100, compiled_ms=95)]]
    (row,) = median_rows(runs)
    assert row["detkit_ms"] == 100 and row["peer_ms"] == 120
    assert row["ratio"] == pytest.approx(0.9)  # the per-process ratios are 0.8, 0.917, 0.9: not 100 / 120
    assert row["compiled_ratio"] == pytest.approx(0.825)  # 0.72, 0.825, 0.95
    assert row["threads"] == 2 and isinstance(row["threads"], int)
    assert row["detkit_mem_mb"] is None  # a figure some process lacks stays as the first process has it
    assert row["iters"] == "5 x 3 processes"
    assert row["check"] == ("first-step loss 1.0; ratio per process: eager 0.80, 0.92, 0.90; compiled 0.72, 0.82, 0.95")


def test_rows_stay_apart_and_in_order():
    rows = median_rows([[_row(1, 2), _row(3, 4)], [_row(1, 2), _row(3, 4)]])
    assert [r["detkit_ms"] for r in rows] == [1, 3]


def test_processes_that_measured_different_rows_are_an_error():
    with pytest.raises(RuntimeError, match="different rows"):
        median_rows([[_row(1, 2)], [_row(1, 2), _row(3, 4)]])
