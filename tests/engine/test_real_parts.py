"""End to end with the real parts: shapes data, CocoDataset, the pipeline's loader, CocoEvaluator, Faster R-CNN."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
BASES = [
    "models/faster_rcnn_r18_fpn.yaml",
    "datasets/shapes_detection.yaml",
    "schedules/small_data.yaml",
    "runtime.yaml",
]


def _config(tmp_path: Path, shapes: Path, pipeline: list, **train) -> Path:
    cfg = {
        "_base_": [str(ROOT / "configs" / "_base_" / b) for b in BASES],
        "data": {
            "batch_size": 2,
            "num_workers": 0,
            "train": {"ann_file": str(shapes / "train.json"), "img_dir": str(shapes / "train"), "pipeline": pipeline},
            "val": {"ann_file": str(shapes / "val.json"), "img_dir": str(shapes / "val"), "pipeline": []},
        },
        "train": {"max_epochs": 1, "log_interval": 1, **train},
    }
    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _train(args, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "train.py"), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_train_and_eval_faster_rcnn_on_shapes(shapes, tmp_path):
    from detkit.config import load_config
    from detkit.engine import Trainer

    cfg = load_config(_config(tmp_path, shapes, [{"type": "HorizontalFlip", "p": 0.5}]))
    Trainer(cfg, work_dir=tmp_path / "w", device="cpu").fit()
    rows = [json.loads(line) for line in (tmp_path / "w" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["epoch"] == 1 and "bbox/AP" in rows[-1] and "bbox/AP50" in rows[-1]
    ckpt = torch.load(tmp_path / "w" / "best.pth", weights_only=True)
    assert ckpt["meta"]["class_names"] == ["circle", "rectangle", "triangle", "star"]
    eval_tool = ROOT / "tools" / "eval.py"
    out = subprocess.run(
        [
            sys.executable,
            str(eval_tool),
            str(tmp_path / "w" / "config.yaml"),
            str(tmp_path / "w" / "best.pth"),
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "m.json"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads((tmp_path / "m.json").read_text())["bbox/AP50"] == pytest.approx(rows[-1]["bbox/AP50"])


def small_config(tmp_path: Path, shapes: Path, **train) -> Path:
    """A config of 4 iterations of batch 1 at 64 px per epoch, no data.val (no evaluation)."""
    cfg = _config(tmp_path, shapes, [], **train)
    small = yaml.safe_load(cfg.read_text())
    small["data"]["batch_size"] = 1
    small["data"]["val"] = None
    cfg.write_text(yaml.safe_dump(small))
    return cfg


def kill_and_resume(
    cfg: Path, tmp_path: Path, kill_at: int, args: tuple[str, ...] = ("--device", "cpu")
) -> tuple[dict, dict, dict]:
    """Train ``cfg`` uninterrupted (``ref``), and again (``run``) killed by SIGKILL as iteration ``kill_at`` starts,
    then resumed, each with the tool arguments ``args``; returns both latest.pth files and the meta of the killed
    run's latest.pth."""
    ref = _train([cfg, "--work-dir", tmp_path / "ref", *args])
    assert ref.returncode == 0, ref.stderr[-2000:]
    wrapper = ROOT / "tests" / "engine" / "toy_train.py"  # its kill hook works for any model
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DETKIT_TOY_KILL_AT": str(kill_at), "DETKIT_TOY_REAL": "1"}
    killed = subprocess.run(
        [sys.executable, str(wrapper), str(cfg), "--work-dir", str(tmp_path / "run"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -9
    meta = torch.load(tmp_path / "run" / "latest.pth", weights_only=True)["meta"]
    done = _train([cfg, "--work-dir", tmp_path / "run", *args, "--resume"])
    assert done.returncode == 0, done.stderr[-2000:]
    a = torch.load(tmp_path / "ref" / "latest.pth", weights_only=True)
    return a, torch.load(tmp_path / "run" / "latest.pth", weights_only=True), meta


@pytest.mark.slow  # the default run kills and resumes these parts mid-epoch in iteration mode (test_max_iters.py)
def test_exact_resume_with_real_parts(shapes, tmp_path):
    """SIGKILL mid-epoch and resume: bit-identical to an uninterrupted run. 4 iterations of batch 1 at 64 px, no
    evaluation (the toy resume tests cover evaluation and augmentation)."""
    cfg = small_config(tmp_path, shapes, max_epochs=1, checkpoint_iters=1)
    a, b, meta = kill_and_resume(cfg, tmp_path, 2)
    assert (meta["epoch"], meta["iter_in_epoch"]) == (0, 2)  # killed in the middle of the epoch
    assert a["meta"]["iter"] == b["meta"]["iter"] == 4
    assert len(a["model"]) > 50 and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (docs/cuda_checks.sh runs it)")
@pytest.mark.parametrize("amp", [False, True])
def test_exact_resume_on_cuda(shapes, tmp_path, amp):
    """The same on a GPU with --deterministic (deterministic cuDNN / cuBLAS kernels), in fp32 and with fp16 AMP
    (the gradient scaler's state is in the checkpoint)."""
    cfg = small_config(tmp_path, shapes, max_epochs=1, checkpoint_iters=1)
    args = ("--device", "cuda", "--deterministic", *(("--amp",) if amp else ()))
    a, b, meta = kill_and_resume(cfg, tmp_path, 2, args)
    assert (meta["epoch"], meta["iter_in_epoch"]) == (0, 2)
    assert a["meta"]["iter"] == b["meta"]["iter"] == 4
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
