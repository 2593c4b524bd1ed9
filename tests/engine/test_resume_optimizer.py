"""A resume with another kind of optimizer than the checkpoint's is refused, naming both and the ways on."""

from __future__ import annotations

import pytest
import torch

from detkit.engine import PreflightError, Trainer


def _config(toy, kind: str, max_epochs: int) -> dict:
    cfg = toy.toy_config(max_epochs=max_epochs)
    cfg["optimizer"] = {"type": kind, "lr": 0.01, "weight_decay": 1e-4, "base_batch_size": 2}
    return cfg


def test_an_sgd_run_resumed_with_an_adamw_config_names_both_optimizers(toy, tmp_path):
    """torch's load of SGD's state into AdamW fails with KeyError 'step' ("missing key 'step'" on screen)."""
    run = tmp_path / "run"
    Trainer(_config(toy, "SGD", 1), work_dir=run, device="cpu").fit()
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.suffix == ".pth"}
    with pytest.raises(PreflightError) as e:
        Trainer(_config(toy, "AdamW", 2), work_dir=run, device="cpu", resume=True)
    msg = str(e.value)
    assert "was trained with optimizer SGD (" in msg and "the config gives AdamW (" in msg, msg
    assert str(run / "config.yaml") in msg and "--set optimizer.type=SGD" in msg and "--load-from" in msg
    assert "'step'" not in msg
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.suffix == ".pth"} == before


def test_adam_and_adamw_keep_the_same_state_and_resume_into_each_other(toy, tmp_path):
    run = tmp_path / "run"
    Trainer(_config(toy, "AdamW", 1), work_dir=run, device="cpu").fit()
    Trainer(_config(toy, "Adam", 2), work_dir=run, device="cpu", resume=True).fit()
    assert torch.load(run / "latest.pth", weights_only=True)["meta"]["epoch"] == 2
