"""Trainer(eval_callbacks=...): called after each evaluation with (epoch, metrics); a reason returned stops the run
after that epoch like a finished one (latest.pth, plots, summary with the reason); an error raised propagates."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from detkit.engine import Trainer


def test_callbacks_see_every_evaluation(toy, tmp_path):
    seen = []
    cfg = toy.toy_config(max_epochs=3, eval_interval=2)  # evaluations after epochs 2 and 3
    tr = Trainer(cfg, work_dir=tmp_path, device="cpu", eval_callbacks=[lambda e, m: seen.append((e, m))])
    metrics = tr.fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [e for e, _ in seen] == [2, 3] == [r["epoch"] for r in rows]
    assert seen[-1][1] == metrics and seen[0][1]["bbox/AP"] == rows[0]["bbox/AP"]
    assert tr.stop_reason is None and tr.epoch == 3


def test_a_reason_stops_the_run_like_a_finished_one(toy, tmp_path, caplog):
    calls = []

    def stop_at_2(epoch, metrics):
        calls.append(epoch)
        return f"pruned at epoch {epoch}" if epoch == 2 else None

    quiet = lambda epoch, metrics: None  # noqa: E731  (a callback that never stops)
    tr = Trainer(toy.toy_config(max_epochs=5), work_dir=tmp_path, device="cpu", eval_callbacks=[quiet, stop_at_2])
    with caplog.at_level(logging.INFO, logger="detkit"):
        metrics = tr.fit()
    assert calls == [1, 2] and tr.stop_reason == "pruned at epoch 2" and tr.interrupted is None
    assert set(metrics) == {"bbox/AP", "toy/l1"}
    latest = torch.load(tmp_path / "latest.pth", weights_only=True)
    assert latest["meta"]["epoch"] == 2 and latest["meta"]["iter"] == 8
    assert (tmp_path / "best.pth").is_file() and (tmp_path / "losses.png").is_file()
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
    assert "training stopped early (pruned at epoch 2): epoch 2 in" in caplog.text
    assert "stopping after epoch 2: pruned at epoch 2" in (tmp_path / "log.txt").read_text()
    # the run can be continued to train.max_epochs from its latest.pth, without the callback
    resumed = Trainer(toy.toy_config(max_epochs=5), work_dir=tmp_path, device="cpu", resume=True)
    resumed.fit()
    assert resumed.epoch == 5 and resumed.stop_reason is None


def test_the_first_callback_with_a_reason_wins(toy, tmp_path):
    later = []
    tr = Trainer(
        toy.toy_config(max_epochs=3),
        work_dir=tmp_path,
        device="cpu",
        eval_callbacks=[lambda e, m: "enough", lambda e, m: later.append(e)],
    )
    tr.fit()
    assert tr.stop_reason == "enough" and tr.epoch == 1 and later == []


def test_a_callback_error_propagates(toy, tmp_path):
    def broken(epoch, metrics):
        raise RuntimeError("storage unreachable")

    tr = Trainer(toy.toy_config(max_epochs=2), work_dir=tmp_path, device="cpu", eval_callbacks=[broken])
    with pytest.raises(RuntimeError, match="storage unreachable"):
        tr.fit()
    assert torch.load(tmp_path / "latest.pth", weights_only=True)["meta"]["epoch"] == 1  # saved before evaluating
