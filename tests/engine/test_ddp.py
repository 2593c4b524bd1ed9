"""torchrun with 2 CPU processes (gloo) matches 1 process with the same global batch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from detkit.engine import Trainer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# GroupNorm (no batch statistics), no dropout, no random augmentation; each process's loss is a mean over
# its own samples and both processes hold equally many, so the DDP gradient average equals the 1-process
# mean over the global batch. The toy sampler deals the same global batches for any world size.
CONFIG = {
    "model": {"type": "ToyDetector", "num_classes": None},
    "data": {
        "batch_size": 2,
        "num_workers": 0,
        "train": {"type": "ToyDataset", "num_samples": 16},
        "val": {"type": "ToyDataset", "num_samples": 6, "seed": 99},
    },
    "train": {"max_epochs": 2, "log_interval": 2},
    "optimizer": {"type": "SGD", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4, "base_batch_size": 4},
    "scheduler": {"type": "multistep", "milestones": [1], "warmup_iters": 2},
    "seed": 0,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_match_one(toy, tmp_path):
    cfg_path = tmp_path / "toy.yaml"
    cfg_path.write_text(yaml.safe_dump(CONFIG))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(_free_port()),
        str(HERE / "toy_train.py"),
        str(cfg_path),
        "--work-dir",
        str(tmp_path / "ddp"),
        "--device",
        "cpu",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    single = {**CONFIG, "data": {**CONFIG["data"], "batch_size": 4}}
    metrics = Trainer(single, work_dir=tmp_path / "one", device="cpu").fit()
    a = torch.load(tmp_path / "ddp" / "latest.pth", weights_only=True)
    b = torch.load(tmp_path / "one" / "latest.pth", weights_only=True)
    assert a["meta"]["iter"] == b["meta"]["iter"] == 8 and a["meta"]["world_size"] == 2 and len(a["rng"]) == 2
    for k, v in b["model"].items():
        assert torch.allclose(a["model"][k], v, atol=1e-5, rtol=0), k
    # evaluation gathered every rank's predictions: the same metrics as one process over all 6 images
    last = yaml.safe_load((tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()[-1])
    assert abs(last["toy/l1"] - metrics["toy/l1"]) < 1e-3 and last["bbox/AP"] == metrics["bbox/AP"]
    assert (tmp_path / "ddp" / "log.txt").read_text().count("evaluation at epoch 2") == 1  # rank 0 alone logs
    # the iteration lines show the losses averaged over the processes: one process's figures with the same batch
    import re

    def lines(work):
        text = (work / "log.txt").read_text()
        return [(m[0], float(m[1])) for m in re.findall(r"\(global (\d+)\) loss ([\d.]+) ", text)]

    ddp, one = lines(tmp_path / "ddp"), lines(tmp_path / "one")
    assert [g for g, _ in ddp] == [g for g, _ in one] and len(ddp) >= 4
    assert all(abs(a - b) <= 1e-3 * max(1.0, b) for (_, a), (_, b) in zip(ddp, one)), (ddp, one)
