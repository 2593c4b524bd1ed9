"""torchrun, 2 CPU processes x batch 2, with the REAL parts (shapes CocoDataset, build_dataloader's
GroupedBatchSampler, Faster R-CNN R18-FPN) matches 1 process x batch 4 to 1e-5.

What must hold for the equality (docs/training.md, "Equivalence with one process"):
- no batch statistics: GroupNorm in the backbone (stem and layer1 frozen, for speed) and the FPN; no dropout;
- the same augmentation: the random flip is seeded per sample by ``(seed, epoch, index)``, not per process;
- the same global batches: the sampler deals global batches of ``batch_size x world`` (tested here
  end to end, and in tests/data/test_samplers.py);
- every process's losses are means over the same number of terms, since DDP averages the per-process
  gradients: the R-CNN losses are normalised by the number of sampled anchors / RoIs of the *process's*
  batch (as torchvision's), so the test makes that count equal on every image. Every anchor and every
  proposal is sampled (``batch_size_per_image`` above their number, ``positive_fraction`` 1), none is
  ignored (fg and bg IoU thresholds equal), every anchor becomes a proposal (``pre/post_nms_top_n``
  above the anchor count, NMS threshold 1), all images are 64x64 with exactly one object. The random
  subset draws of the samplers then pick everything, whatever the per-process RNG streams;
- the same LR: the linear scaling rule sees the same total batch (4).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _config(shapes: Path, batch_size: int) -> dict:
    big = 100_000  # above every anchor / RoI count: every one is sampled
    return {
        "_base_": [str(ROOT / "configs" / "_base_" / "models" / "faster_rcnn_r18_fpn.yaml")],
        "model": {
            "backbone": {"norm": "GN", "gn_groups": 8, "frozen_stages": 1},
            "neck": {"out_channels": 32},
            "rpn_head": {
                "in_channels": 32,
                "anchor_sizes": [[16], [32], [48], [64], [96]],
                "aspect_ratios": [1.0],
                "fg_iou_thresh": 0.5,
                "bg_iou_thresh": 0.5,
                "batch_size_per_image": big,
                "positive_fraction": 1.0,
                "pre_nms_top_n_train": big,
                "post_nms_top_n_train": big,
                "nms_thr": 1.0,
            },
            "box_head": {
                "in_channels": 32,
                "representation_size": 64,
                "batch_size_per_image": big,
                "positive_fraction": 1.0,
            },
        },
        "data": {
            "batch_size": batch_size,
            "num_workers": 0,
            "train": {
                "type": "CocoDataset",
                "ann_file": str(shapes / "train.json"),
                "img_dir": str(shapes / "train"),
                "pipeline": [{"type": "HorizontalFlip", "p": 0.5}],
            },
        },
        "train": {"max_epochs": 2, "log_interval": 1, "checkpoint_interval": 1},
        "optimizer": {"type": "SGD", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4, "base_batch_size": 4},
        "scheduler": {"type": "multistep", "milestones": [1], "warmup_iters": 1},
        "seed": 0,
    }


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from detkit.data.synthetic import make_shapes

    out = tmp_path_factory.mktemp("shapes")
    make_shapes(out, num_train=8, num_val=0, size=(64, 64), max_objects=1, empty_fraction=0.0, seed=0)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _history(work: Path) -> dict:
    return json.loads((work / "history.json").read_text())


def _train(cfg: Path, work: Path, nproc: int) -> None:
    """tools/train.py through the toy wrapper with the real builders, in a fresh process (torchrun when nproc > 1)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(3 - nproc), "DETKIT_TOY_REAL": "1"}
    launch = (
        [sys.executable]
        if nproc == 1
        else [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            str(nproc),
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            str(_free_port()),
        ]
    )
    proc = subprocess.run(
        [*launch, str(HERE / "toy_train.py"), str(cfg), "--work-dir", str(work), "--device", "cpu"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_torchrun_real_faster_rcnn_matches_one_process(shapes, tmp_path):
    # both runs in fresh processes: the same imports before the same seeding
    for name, batch_size, nproc in (("ddp", 2, 2), ("one", 4, 1)):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(_config(shapes, batch_size)))
        _train(tmp_path / f"{name}.yaml", tmp_path / name, nproc)
    for ckpt in ("epoch_1.pth", "epoch_2.pth"):
        a = torch.load(tmp_path / "ddp" / ckpt, weights_only=True)
        b = torch.load(tmp_path / "one" / ckpt, weights_only=True)
        assert a["meta"]["world_size"] == 2 and a["meta"]["iter"] == b["meta"]["iter"]
        for k, v in b["model"].items():
            assert torch.allclose(a["model"][k], v, atol=1e-5, rtol=0), (ckpt, k, (a["model"][k] - v).abs().max())
    assert b["meta"]["iter"] == 4
    # the runs did train: the weights of the heads and the unfrozen backbone moved during epoch 2
    e1 = torch.load(tmp_path / "one" / "epoch_1.pth", weights_only=True)["model"]
    moved = [k for k, v in b["model"].items() if v.is_floating_point() and not torch.equal(v, e1[k])]
    for prefix in ("backbone.layer4.", "neck.", "rpn_head.", "box_head."):
        assert any(k.startswith(prefix) for k in moved), prefix
    # the logged losses (each rank's mean, averaged over the ranks) equal the 1-process losses
    ha, hb = _history(tmp_path / "ddp"), _history(tmp_path / "one")
    assert ha["iter"] == hb["iter"] == [1, 2, 3, 4] and ha["lr"] == pytest.approx(hb["lr"], rel=1e-12)
    for key in ("rpn/cls", "rpn/box", "roi/cls", "roi/box"):
        assert ha["loss"][key] == pytest.approx(hb["loss"][key], rel=1e-5, abs=1e-6), key
