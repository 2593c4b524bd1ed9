"""RunRecord.start of a resumed run: the rows after the checkpoint dropped, the kept ones re-counted, in one pass
over metrics.jsonl (one read, one write)."""

from __future__ import annotations

import json

import pytest

from detkit.engine import logger as run_logger
from detkit.engine.logger import RunRecord


@pytest.fixture
def record(tmp_path, monkeypatch):
    """A RunRecord of 3 evaluations (4 iterations per epoch) and 6 loss points; its reads and writes counted."""
    rows = [{"epoch": e, "iter": 4 * e, "bbox/AP": 0.1 * e} for e in (1, 2, 3)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    its = [2, 4, 6, 8, 10, 12]
    history = {
        "iter": its,
        "epoch": [i / 4 for i in its],
        "lr": [0.1] * 6,
        "loss": {"loss": [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]},
    }
    (tmp_path / "history.json").write_text(json.dumps(history))
    calls = {"read": 0, "write": 0}
    read, write = run_logger.read_jsonl, run_logger.atomic_write

    def counted_read(path):
        calls["read"] += path.name == "metrics.jsonl"
        return read(path)

    def counted_write(path, fn):
        calls["write"] += path.name == "metrics.jsonl"
        return write(path, fn)

    monkeypatch.setattr(run_logger, "read_jsonl", counted_read)
    monkeypatch.setattr(run_logger, "atomic_write", counted_write)
    rec = RunRecord(tmp_path)
    rec.calls = calls
    return rec


def test_resume_recounted_in_one_pass(record):
    record.start((8, True), iters_per_epoch=2)  # checkpoint at iteration 8 (epoch 2), now 2 iterations per epoch
    assert record.calls == {"read": 1, "write": 1}
    assert [(r["epoch"], r["iter"]) for r in record.metrics()] == [(1, 2), (2, 4)]
    assert record.history["iter"] == [1, 2, 3, 4] and record.history["loss"]["loss"] == [1.0, 0.9, 0.8, 0.7]


def test_resume_in_the_same_units_keeps_the_iterations(record):
    record.start((8, False), iters_per_epoch=2)
    assert record.calls == {"read": 1, "write": 1}
    assert [(r["epoch"], r["iter"]) for r in record.metrics()] == [(1, 4), (2, 8)]
    assert record.history["iter"] == [2, 4, 6, 8]


def test_a_new_run_starts_fresh(record, tmp_path):
    record.start(None, iters_per_epoch=4)
    assert not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "history.json").exists()
    assert record.history["iter"] == []
