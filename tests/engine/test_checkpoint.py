"""Atomic checkpoints, weights_only loading, RNG state round trip, tolerant weight loading, EMA."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from detkit.engine.checkpoint import (
    get_rng_state,
    load_checkpoint,
    load_weights,
    model_state,
    preserve_rng,
    save_checkpoint,
    set_rng_state,
)
from detkit.engine.ema import ModelEMA

ROOT = Path(__file__).resolve().parents[2]


def test_rng_state_is_weights_only_and_restores_every_stream(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    np.random.randn()  # leaves a cached gaussian in the numpy state
    save_checkpoint({"rng": get_rng_state()}, tmp_path / "r.pth")
    expected = (random.random(), np.random.randn(), torch.rand(1))
    state = torch.load(tmp_path / "r.pth", weights_only=True)["rng"]
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    set_rng_state(state)
    assert (random.random(), np.random.randn()) == expected[:2] and torch.equal(torch.rand(1), expected[2])


def test_preserve_rng_leaves_streams_untouched():
    torch.manual_seed(3)
    ref = torch.get_rng_state()
    with preserve_rng():
        torch.rand(10), np.random.rand(3), random.random()
    assert torch.equal(torch.get_rng_state(), ref)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "latest.pth"
    save_checkpoint({"model": {"w": torch.ones(2)}, "meta": {"epoch": 1}}, path)
    save_checkpoint({"model": {"w": torch.zeros(2)}, "meta": {"epoch": 2}}, path)
    ckpt = load_checkpoint(path)
    assert ckpt["meta"]["epoch"] == 2 and torch.equal(model_state(ckpt)["w"], torch.zeros(2))
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pth"]


def test_kill_during_save_keeps_old_checkpoint_loadable(tmp_path):
    """SIGKILL a process while it writes latest.pth: the previous latest.pth must still load."""
    path = tmp_path / "latest.pth"
    save_checkpoint({"model": {"w": torch.full((4,), 7.0)}, "meta": {"iter": 10}}, path)
    script = textwrap.dedent(f"""
        import sys, time, torch
        sys.path.insert(0, {str(ROOT)!r})
        from detkit.engine import checkpoint
        real_save = torch.save
        def slow_save(obj, f):
            real_save(obj, f)
            f.flush()
            print("WRITING", flush=True)
            time.sleep(60)  # killed here: the new bytes are on disk but not yet renamed
        checkpoint.torch.save = slow_save
        checkpoint.save_checkpoint({{"model": {{"w": torch.zeros(1 << 20)}}, "meta": {{"iter": 20}}}},
                                   {str(path)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "WRITING"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    leftovers = [p for p in tmp_path.iterdir() if p.name != "latest.pth"]
    assert leftovers and leftovers[0].stat().st_size > 1 << 20  # the interrupted write was real
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["meta"]["iter"] == 10 and torch.equal(ckpt["model"]["w"], torch.full((4,), 7.0))


def test_load_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_checkpoint(tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.pth"):
        load_checkpoint(bad)


def test_load_weights_drops_mismatched_shapes(caplog):
    src = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 3))
    dst = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 5))
    state = {f"module.{k}": v for k, v in src.state_dict().items()}  # a DDP-saved state dict
    state["extra.weight"] = torch.zeros(1)
    before = dst[1].weight.detach().clone()
    with caplog.at_level("INFO", logger="detkit"):
        report = load_weights(dst, state)
    assert torch.equal(dst[0].weight, src[0].weight) and torch.equal(dst[1].weight, before)
    assert sorted(report["missing"]) == ["1.bias", "1.weight"] and report["unexpected"] == ["extra.weight"]
    assert len(report["mismatched"]) == 2 and "(3, 8)" in report["mismatched"][0]
    assert "shapes differ" in caplog.text


def test_ema_ramps_and_tracks():
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    ema = ModelEMA(model, decay=0.9, tau=1.0)
    assert ema.current_decay() == pytest.approx(0.9 * (1 - np.exp(-1)))
    start = ema.module.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    d = ema.current_decay()
    ema.update(model)
    assert torch.allclose(ema.module.weight, d * start + (1 - d) * model.weight)
    assert ema.updates == 1 and not ema.module.weight.requires_grad


def test_load_from_another_class_count_logs_counts_by_module(tmp_path, caplog):
    """--load-from of a checkpoint with other classes: one warning with the re-initialised tensors counted by
    module (no repeated 'missing' line), and every tensor named at DEBUG level only."""
    from detkit.engine.checkpoint import load_pretrained

    def detector(num_classes: int) -> nn.Module:
        model = nn.Module()
        model.backbone = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
        model.head = nn.Module()
        model.head.cls_branch = nn.ModuleList(nn.Conv2d(8, num_classes, 1) for _ in range(3))
        model.head.box_branch = nn.Conv2d(8, 4, 1)
        model.class_names = [f"c{i}" for i in range(num_classes)]
        return model

    src = detector(80)
    torch.save({"model": src.state_dict(), "meta": {"class_names": src.class_names}}, tmp_path / "c80.pth")
    dst = detector(4)
    with caplog.at_level("INFO", logger="detkit"):
        report = load_pretrained(dst, tmp_path / "c80.pth")
    assert len(report["mismatched"]) == 6 and torch.equal(dst.head.box_branch.weight, src.head.box_branch.weight)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "detkit"]
    assert lines[0] == ("INFO", f"loading weights from {tmp_path / 'c80.pth'}: 9 of 15 tensors fit the model")
    assert lines[1:] == [
        (
            "WARNING",
            f"--load-from {tmp_path / 'c80.pth'} has 80 classes (c0, c1, c2, c3, c4, ...), the config 4 "
            "(c0, c1, c2, c3): 6 tensor(s) of other shapes are re-initialised: head.cls_branch (6)",
        )
    ]
    caplog.clear()
    with caplog.at_level("DEBUG", logger="detkit"):
        load_pretrained(detector(4), tmp_path / "c80.pth")
    debug = " ".join(r.getMessage() for r in caplog.records if r.levelname == "DEBUG")
    assert "head.cls_branch.2.bias: (80,) in" in debug and "head.cls_branch.0.weight: (80, 8, 1, 1)" in debug


def test_load_weights_groups_missing_and_unexpected_tensors(caplog):
    src = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 3))
    dst = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 3), nn.Linear(3, 2))
    state = {**src.state_dict(), "extra.a.weight": torch.zeros(1), "extra.a.bias": torch.zeros(1)}
    with caplog.at_level("INFO", logger="detkit"):
        load_weights(dst, state, source="ck.pth")
    assert [r.getMessage() for r in caplog.records] == [
        "missing in ck.pth: 2 tensor(s): 2 (2)",
        "unexpected in ck.pth: 2 tensor(s): extra.a (2)",
    ]


def test_a_full_disk_is_named_and_the_previous_checkpoint_kept(tmp_path, monkeypatch):
    """torch's zip writer reports a full disk as '[enforce fail at inline_container.cc:672] . unexpected pos ...'."""
    import errno

    import torch

    from detkit.engine.checkpoint import save_checkpoint

    path = tmp_path / "latest.pth"
    save_checkpoint({"iter": 4}, path)

    def full(obj, f):
        f.write(b"x" * 100)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 31540416 vs 31540308")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match="no space left on the device while writing .*latest.pth") as e:
        save_checkpoint({"iter": 8}, path)
    assert e.value.errno == errno.ENOSPC and "previous checkpoint of that name is kept" in str(e.value)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"iter": 4}
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pth"]  # no temporary file left
