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


def test_one_process_on_a_chosen_gpu_makes_it_current(two_gpus):
    assert dist.init_distributed("cuda:1") == torch.device("cuda:1")
    assert two_gpus == [torch.device("cuda:1")]  # pinned-memory threads and per-device checks use that GPU
    assert dist.init_distributed("cuda") == torch.device("cuda") and len(two_gpus) == 1


def test_a_gpu_index_under_torchrun_is_refused(two_gpus, monkeypatch):
    """Every rank would take that one GPU (NCCL: duplicate GPU); refused before any process group."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    for device in ("cuda:0", "1"):
        with pytest.raises(ValueError, match=r"under torchrun \(2 processes\).*LOCAL_RANK.*--device cuda"):
            dist.init_distributed(device)
    assert two_gpus == [] and not torch.distributed.is_initialized()


def test_each_rank_takes_the_gpu_of_its_local_rank(two_gpus, monkeypatch):
    """LOCAL_RANK modulo the visible GPUs (a SLURM task given one GPU sees it as cuda:0)."""
    groups = []
    monkeypatch.setattr(dist.dist, "init_process_group", lambda **kw: groups.append(kw))
    monkeypatch.setattr(dist.dist, "is_initialized", lambda: False)
    monkeypatch.setenv("WORLD_SIZE", "4")
    for local_rank, gpu in (("1", 1), ("3", 1), ("2", 0)):
        monkeypatch.setenv("LOCAL_RANK", local_rank)
        assert dist.init_distributed("cuda") == torch.device("cuda", gpu)
        assert groups[-1]["backend"] == "nccl" and groups[-1]["device_id"] == torch.device("cuda", gpu)
    assert two_gpus == [torch.device("cuda", 1), torch.device("cuda", 1), torch.device("cuda", 0)]


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


def test_a_busy_master_port_is_named_with_the_fix(monkeypatch):
    """SLURM-style launch (one process per task, no torchrun agent): rank 0 cannot bind MASTER_PORT."""
    import socket

    from detkit.engine.dist import init_distributed
    from detkit.utils.device import DeviceError

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        for key, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("MASTER_PORT", str(port))
        monkeypatch.delenv("TORCHELASTIC_USE_AGENT_STORE", raising=False)
        with pytest.raises(
            DeviceError, match=rf"could not meet at MASTER_ADDR:MASTER_PORT 127.0.0.1:{port} .*free port"
        ):
            init_distributed("cpu")


def test_more_processes_per_machine_than_gpus_is_refused(monkeypatch):
    import torch

    from detkit.engine.dist import _check_gpus_per_node
    from detkit.utils.device import DeviceError

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    with pytest.raises(
        DeviceError, match=r"4 processes per machine .* but 2 GPU\(s\) in sight: give --nproc-per-node 2"
    ):
        _check_gpus_per_node()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    _check_gpus_per_node()
