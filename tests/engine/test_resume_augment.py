"""Exact resume with random augmentation and data-loader workers: SIGKILL mid-epoch, resume, torch.equal.

The real data path (shapes CocoDataset, albumentations HorizontalFlip + ColorJitter, build_dataloader with
2 persistent workers) feeds the toy detector (fast on a CPU). Every sample's augmentation is seeded by
``(seed, epoch, index)``, so the resumed run draws the same flips and colours as the uninterrupted one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _config(shapes: Path) -> dict:
    pipeline = [
        {"type": "HorizontalFlip", "p": 0.5},
        {"type": "ColorJitter", "brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1, "p": 0.8},
    ]
    return {
        "model": {"type": "ToyDetector", "num_classes": None, "dropout": 0.2},
        "data": {
            "batch_size": 2,
            "num_workers": 2,
            "train": {
                "type": "CocoDataset",
                "ann_file": str(shapes / "train.json"),
                "img_dir": str(shapes / "train"),
                "pipeline": pipeline,
            },
        },
        "train": {"max_epochs": 3, "log_interval": 2, "checkpoint_iters": 1},
        "optimizer": {"type": "SGD", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4, "base_batch_size": 2},
        "scheduler": {"type": "multistep", "milestones": [2], "warmup_iters": 2},
        "seed": 5,
    }


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    from detkit.data.synthetic import make_shapes

    root = tmp_path_factory.mktemp("aug")
    make_shapes(root / "shapes", num_train=8, num_val=0, size=(64, 64), max_objects=2, empty_fraction=0.0, seed=1)
    path = root / "cfg.yaml"
    path.write_text(yaml.safe_dump(_config(root / "shapes")))
    return path


def _run(args, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DETKIT_TOY_REAL": "1", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, str(HERE / "toy_train.py"), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_sigkill_then_resume_with_augmentation_and_workers_is_exact(config_file, tmp_path):
    # the reference runs in a fresh process too: the same imports before the same seeding
    ref_run = _run([config_file, "--work-dir", tmp_path / "ref", "--device", "cpu"])
    assert ref_run.returncode == 0, ref_run.stderr[-2000:]
    ref = torch.load(tmp_path / "ref" / "latest.pth", weights_only=True)

    work = tmp_path / "run"
    killed = _run([config_file, "--work-dir", work, "--device", "cpu"], {"DETKIT_TOY_KILL_AT": "6"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    meta = torch.load(work / "latest.pth", weights_only=True)["meta"]
    assert (meta["epoch"], meta["iter"], meta["iter_in_epoch"]) == (1, 6, 2)  # mid-epoch, by checkpoint_iters
    done = _run([config_file, "--work-dir", work, "--device", "cpu", "--resume"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 into the epoch" in done.stdout
    out = torch.load(work / "latest.pth", weights_only=True)
    assert out["meta"]["iter"] == ref["meta"]["iter"] == 12
    for name, value in ref["model"].items():
        assert torch.equal(out["model"][name], value), f"{name} differs"
