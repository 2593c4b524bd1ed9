"""An error at evaluation time loses no training: latest.pth comes first, one message, resume redoes it."""

from __future__ import annotations

import json

import pytest
import torch

from detkit.engine import EvaluationFailed, Trainer


def test_evaluation_error_keeps_the_epoch_and_resume_redoes_the_evaluation(toy, tmp_path):
    cfg = toy.toy_config(max_epochs=2)
    cfg["model"]["predict_error"] = "evaluator on fire"
    tr = Trainer(cfg, work_dir=tmp_path, device="cpu")
    with pytest.raises(EvaluationFailed) as e:
        tr.fit()
    msg = str(e.value)
    assert "evaluation after epoch 1 failed (RuntimeError: evaluator on fire)" in msg
    assert str(tmp_path / "latest.pth") in msg and "resume=True" in msg and "\n" not in msg
    assert isinstance(e.value.__cause__, RuntimeError)
    ckpt = torch.load(tmp_path / "latest.pth", weights_only=True)
    assert (ckpt["meta"]["epoch"], ckpt["meta"]["iter"]) == (1, 4) and "optimizer" in ckpt  # the epoch is safe
    log = (tmp_path / "log.txt").read_text()
    assert "Traceback (most recent call last)" in log and "evaluator on fire" in log  # the traceback: log only
    assert not (tmp_path / "metrics.jsonl").exists() or not (tmp_path / "metrics.jsonl").read_text()

    del cfg["model"]["predict_error"]  # the cause fixed: resume evaluates epoch 1 first, then trains epoch 2
    resumed = Trainer(cfg, work_dir=tmp_path, device="cpu", resume=True)
    assert (resumed.epoch, resumed.iter) == (1, 4)
    resumed.fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["iter"]) for r in rows] == [(1, 4), (2, 8)]
    assert torch.load(tmp_path / "best.pth", weights_only=True)["meta"]["best"]["epoch"] in (1, 2)


def test_an_evaluated_epoch_is_not_evaluated_again_on_resume(toy, tmp_path):
    cfg = toy.toy_config(max_epochs=1)
    Trainer(cfg, work_dir=tmp_path, device="cpu").fit()
    cfg["train"]["max_epochs"] = 2
    tr = Trainer(cfg, work_dir=tmp_path, device="cpu", resume=True)
    assert not tr.validator.pending(tr.epoch, tr.iter, tr.iter_in_epoch)
    tr.fit()
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]
