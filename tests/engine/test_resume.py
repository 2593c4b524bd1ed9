"""Exact resume after SIGKILL mid-epoch, and SIGTERM handling, through tools/train.py in a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from detkit.engine import Trainer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# dropout consumes the torch RNG, ``augment`` the numpy RNG: both streams must be restored exactly
CONFIG = {
    "model": {"type": "ToyDetector", "num_classes": None, "dropout": 0.2},
    "data": {
        "batch_size": 2,
        "num_workers": 0,
        "train": {"type": "ToyDataset", "num_samples": 8, "augment": True},
        "val": {"type": "ToyDataset", "num_samples": 4, "seed": 99},
    },
    "train": {"max_epochs": 3, "log_interval": 2, "checkpoint_iters": 3, "ema": {"decay": 0.99, "tau": 5}},
    "optimizer": {"type": "SGD", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4, "base_batch_size": 2},
    "scheduler": {"type": "multistep", "milestones": [2], "warmup_iters": 2},
    "seed": 3,
}


def _run_tool(args, env_extra=None, timeout=300):
    env = {**os.environ, **(env_extra or {}), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(HERE / "toy_train.py"), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "toy.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Uninterrupted run, in this process (3 epochs x 4 iterations)."""
    import detkit_toy

    from detkit.engine import builders

    saved = (builders.build_dataset, builders.build_dataloader, builders.build_evaluator)
    detkit_toy.install()
    try:
        work = tmp_path_factory.mktemp("ref")
        Trainer(CONFIG, work_dir=work, device="cpu").fit()
    finally:
        builders.build_dataset, builders.build_dataloader, builders.build_evaluator = saved
    return torch.load(work / "latest.pth", weights_only=True)


def _assert_same(ckpt, ref):
    assert ckpt["meta"]["iter"] == ref["meta"]["iter"] == 12
    for key in ("model", "model_raw"):
        for name, value in ref[key].items():
            assert torch.equal(ckpt[key][name], value), f"{key}.{name} differs"


def test_sigkill_mid_epoch_then_resume_is_exact(config_file, reference, tmp_path):
    work = tmp_path / "run"
    killed = _run_tool([config_file, "--work-dir", work, "--device", "cpu"], {"DETKIT_TOY_KILL_AT": "10"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    meta = torch.load(work / "latest.pth", weights_only=True)["meta"]
    assert (meta["epoch"], meta["iter"], meta["iter_in_epoch"]) == (2, 9, 1)  # written by checkpoint_iters
    done = _run_tool([config_file, "--work-dir", work, "--device", "cpu", "--resume"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resumed from" in done.stdout and "epoch 3, iteration 9 (1 into the epoch)" in done.stdout  # in epoch 3
    _assert_same(torch.load(work / "latest.pth", weights_only=True), reference)
    epochs = [line for line in (work / "metrics.jsonl").read_text().splitlines()]
    assert len(epochs) == 3


def test_sigterm_saves_latest_prints_resume_command_and_resumes_exactly(config_file, reference, tmp_path):
    work = tmp_path / "run"
    stopped = _run_tool([config_file, "--work-dir", work, "--device", "cpu"], {"DETKIT_TOY_SIGNAL_AT": "5:SIGTERM"})
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    assert "SIGTERM received" in stopped.stderr
    resume_line = next(line for line in stopped.stdout.splitlines() if "Resume with:" in line)
    assert f"--work-dir {work} --resume" in resume_line and str(config_file) in resume_line
    assert torch.load(work / "latest.pth", weights_only=True)["meta"]["iter"] == 6  # the step in flight ended
    done = _run_tool([config_file, "--work-dir", work, "--device", "cpu", "--resume"])
    assert done.returncode == 0, done.stderr[-2000:]
    stop = re.search(r"at epoch (\d+), iteration (\d+)", resume_line).groups()
    assert re.search(rf"resumed from .*: epoch {stop[0]}, iteration {stop[1]} ", done.stdout)  # the same count
    _assert_same(torch.load(work / "latest.pth", weights_only=True), reference)


def test_resume_with_another_batch_per_iteration_moves_the_position(config_file, tmp_path):
    """A checkpoint of a run with 2 images per iteration resumed with 1 (as with another process count): the
    same images into the epoch, the epoch's iterations re-counted, the run ends where the new schedule does."""
    work = tmp_path / "run"
    killed = _run_tool([config_file, "--work-dir", work, "--device", "cpu"], {"DETKIT_TOY_KILL_AT": "10"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    resume = [config_file, "--work-dir", work, "--device", "cpu", "--resume", "--set", "data.batch_size=1"]
    done = _run_tool(resume)
    assert done.returncode == 0, done.stderr[-2000:]
    text = done.stdout + done.stderr
    assert (
        "the checkpoint's run took 2 images per iteration (1 process(es) x data.batch_size), this one takes 1" in text
    )
    assert "resuming 2 images into epoch 3 (iteration 2 of its 8; 0 image(s) trained again), at iteration 18 " in text
    assert "LR schedule changed on resume" not in text  # the old schedule counted other iterations
    meta = torch.load(work / "latest.pth", weights_only=True)["meta"]
    assert (meta["epoch"], meta["iter"]) == (3, 24)
    rows = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["iter"]) for r in rows] == [(1, 8), (2, 16), (3, 24)]  # the kept rows re-counted


def test_resume_with_more_images_per_iteration_keeps_each_evaluation_once(config_file, tmp_path):
    """1 image per iteration -> 2 (as 1 -> 2 processes): no epoch evaluated twice or lost, rows in new units."""
    work = tmp_path / "run"
    one = [config_file, "--work-dir", work, "--device", "cpu", "--set", "data.batch_size=1"]
    killed = _run_tool(one, {"DETKIT_TOY_KILL_AT": "18"})  # epoch 3, 2 iterations into it (8 per epoch)
    assert killed.returncode == -9, killed.stderr[-2000:]
    done = _run_tool([config_file, "--work-dir", work, "--device", "cpu", "--resume", "--set", "data.batch_size=2"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming 2 images into epoch 3 (iteration 1 of its 4; 0 image(s) trained again), at iteration 9 " in (
        done.stdout + done.stderr
    )
    rows = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["iter"]) for r in rows] == [(1, 4), (2, 8), (3, 12)]
    history = json.loads((work / "history.json").read_text())
    assert history["iter"] == sorted(history["iter"]) and history["iter"][-1] == 12
