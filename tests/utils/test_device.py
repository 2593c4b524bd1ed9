"""--device as PyTorch users type it, and a clear DeviceError for a device this machine does not have."""

from __future__ import annotations

import pytest
import torch

from detkit.utils.device import DeviceError, parse_device


def test_cpu_and_default():
    assert parse_device("cpu") == torch.device("cpu") and parse_device(" CPU ") == torch.device("cpu")
    assert parse_device(torch.device("cpu")) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert parse_device(None).type == expected and parse_device("").type == expected


def test_cuda_spellings_with_two_gpus(two_gpus):
    assert parse_device("cuda") == torch.device("cuda")
    assert parse_device("cuda:1") == torch.device("cuda:1") and parse_device("1") == torch.device("cuda:1")
    assert parse_device(0) == torch.device("cuda:0")
    assert parse_device("0,1", multi=True) == [torch.device("cuda:0"), torch.device("cuda:1")]
    with pytest.raises(DeviceError, match=r"2 CUDA device\(s\) \(cuda:0..cuda:1\)"):
        parse_device("cuda:2")
    with pytest.raises(DeviceError, match="torchrun --nproc-per-node 2.*CUDA_VISIBLE_DEVICES=0,1"):
        parse_device("0,1")  # one process, one device


def test_missing_devices_are_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="--device cuda:1: CUDA is not available.*--device cpu"):
        parse_device("cuda:1")
    with pytest.raises(DeviceError, match="--device 0: CUDA is not available"):
        parse_device("0")
    with pytest.raises(DeviceError, match="--device tpu: not a device name; use one of: cpu"):
        parse_device("tpu")
    with pytest.raises(DeviceError, match="--device meta: detkit runs on cpu, cuda or mps"):
        parse_device("meta")
    if not torch.backends.mps.is_available():
        with pytest.raises(DeviceError, match="--device mps: MPS"):
            parse_device("mps")


def test_trainer_reports_a_missing_device(monkeypatch):
    from detkit.engine import dist

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="CUDA is not available"):
        dist.init_distributed("cuda")
    assert dist.init_distributed("cpu") == torch.device("cpu")
