"""train.patience: the run ends after N evaluations without a new best train.best_metric; a resume goes on counting."""

from __future__ import annotations

import json

import pytest
import torch

from detkit.engine import Trainer
from detkit.engine.preflight import PreflightError


def _epochs(work_dir):
    return [json.loads(line)["epoch"] for line in (work_dir / "metrics.jsonl").read_text().splitlines()]


def test_patience_stops_a_run_that_stopped_improving(toy, tmp_path):
    cfg = toy.toy_config(max_epochs=10, patience=2)
    cfg["optimizer"]["lr"] = 1e-12  # the metric never changes: the first evaluation stays the best
    tr = Trainer(cfg, work_dir=tmp_path, device="cpu")
    tr.fit()
    assert tr.epoch == 3 and _epochs(tmp_path) == [1, 2, 3]
    assert tr.stop_reason.startswith("no new best in 2 evaluations (train.patience 2; best bbox/AP")
    assert tr.stop_reason.endswith("at epoch 1)")
    assert torch.load(tmp_path / "latest.pth", weights_only=True)["meta"]["epoch"] == 3


def test_a_resume_goes_on_counting(toy, tmp_path):
    cfg = toy.toy_config(max_epochs=2, patience=3)
    cfg["optimizer"]["lr"] = 1e-12
    Trainer(cfg, work_dir=tmp_path, device="cpu").fit()  # best at 1, one evaluation without a new best
    cfg = toy.toy_config(max_epochs=10, patience=3)
    cfg["optimizer"]["lr"] = 1e-12
    resumed = Trainer(cfg, work_dir=tmp_path, device="cpu", resume=True)
    resumed.fit()
    assert resumed.epoch == 4 and _epochs(tmp_path) == [1, 2, 3, 4]  # 2, 3, 4: three without a new best
    assert "no new best in 3 evaluations" in resumed.stop_reason


def test_patience_needs_a_val_set(toy, tmp_path):
    cfg = toy.toy_config(max_epochs=2, patience=2)
    cfg["data"].pop("val")
    with pytest.raises(PreflightError, match="train.patience 2 counts evaluations, but there is no data.val"):
        Trainer(cfg, work_dir=tmp_path, device="cpu")
