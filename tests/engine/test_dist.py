"""Launcher environment (SLURM -> torchrun variables), single-process helpers, config defaults files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml

from detkit.config import load_config
from detkit.engine import dist, resolve_config
from detkit.engine.defaults import TRAIN_DEFAULTS
from detkit.engine.optim import LRSchedule
from detkit.engine.runtime import resolve_amp

ROOT = Path(__file__).resolve().parents[2]


def test_slurm_env_is_translated(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.setenv(k, "x")  # recorded, so that teardown removes what the code under test sets
        monkeypatch.delenv(k)
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_PROCID", "5")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "nodeA,nodeB")
    monkeypatch.setenv("PATH", "/nonexistent")  # no scontrol: the first listed host is used
    assert dist.env_world_size() == 8
    assert (os.environ["RANK"], os.environ["LOCAL_RANK"], os.environ["MASTER_ADDR"]) == ("5", "1", "nodeA")
    assert os.environ["MASTER_PORT"] == "29500"


def test_single_process_helpers(monkeypatch):
    for k in ("WORLD_SIZE", "RANK", "SLURM_NTASKS"):
        monkeypatch.setenv(k, "x")
        monkeypatch.delenv(k)
    assert dist.init_distributed("cpu") == torch.device("cpu")
    assert (dist.get_rank(), dist.get_world_size(), dist.is_dist()) == (0, 1, False)
    assert dist.all_gather_object({"a": 1}) == [{"a": 1}]
    t = torch.ones(2)
    assert dist.all_reduce_sum(t) is t
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            dist.init_distributed("cuda")


def test_resolve_amp_cpu():
    cpu = torch.device("cpu")
    assert resolve_amp(False, cpu) is None and resolve_amp(True, cpu) is None
    assert resolve_amp("bf16", cpu) == torch.bfloat16


def test_runtime_yaml_matches_engine_defaults_and_schedules_resolve():
    runtime = yaml.safe_load((ROOT / "configs" / "_base_" / "runtime.yaml").read_text())
    assert runtime["train"] == TRAIN_DEFAULTS and runtime["seed"] == 0
    for path in sorted((ROOT / "configs" / "_base_" / "schedules").glob("*.yaml")):
        cfg = resolve_config({"data": {}, **load_config(path)})
        s = LRSchedule.from_config(cfg["scheduler"], cfg["train"]["max_epochs"], iters_per_epoch=10)
        assert s.factor(0) < 1.0 <= max(s.factor(i) for i in range(s.max_iters)), path.name


def test_environment_is_restored_after_slurm_test():
    assert "RANK" not in os.environ or os.environ.get("SLURM_PROCID") is not None
