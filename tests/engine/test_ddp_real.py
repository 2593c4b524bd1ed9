"""torchrun, 2 CPU processes (gloo) x batch 2, gives the weights of 1 process x batch 4 after one epoch, for the
shipped shapes configs as they are: augmentation, RPN / RoI sampling, mixed image sizes, mosaic, SyncBN (YOLO),
AdamW, EMA, gradient clipping (docs/training.md, "Equivalence with one process").

To keep the suite fast the data is 8 images of 128 px and the training sizes are scaled down with ``--set``
(the same transforms, smaller sizes: short sides 64 / 96 / 128 for the R-CNNs, 128 px mosaics for YOLO), one
epoch is 2 steps, and no evaluation runs (``data.val=null``; evaluation under torchrun: test_ddp.py). Both
runs train in float64 (``ddp_train64.py``): in float32 the processes' gradients, summed in another order than
one process sums them, differ by a few ulps, and AdamW (which divides each gradient by its own magnitude)
turns that into up to ~1e-4 on weights whose gradient is near zero (measured in docs/training.md). In float64
the weights agree to ~1e-13 (R-CNNs) and ~5e-9 (YOLO, whose assigner and SyncBN statistics keep some float32
and E[x^2]-E[x]^2 rounding); the tolerance, 1e-6, is 10x tighter than the issue's 1e-5 and 200x above that.
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CONFIGS = ROOT / "detkit" / "configs"
RCNN_SIZES = [
    "data.train.pipeline=[{type: ResizeShortestEdge, short_sizes: [64, 96, 128], max_size: 256},"
    " {type: HorizontalFlip, p: 0.5}]"
]
SHIPPED = {
    "faster_rcnn_r18_fpn_shapes": ("faster_rcnn", RCNN_SIZES),
    "mask_rcnn_r18_fpn_shapes": ("mask_rcnn", RCNN_SIZES),
    # the mosaic stays on: close_mosaic would turn it off for the last 2 epochs of a 1-epoch run
    "yolo_n_shapes": ("yolo", ["data.train.size=128", "data.train.close_mosaic.epochs=0"]),
}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from detkit.data.synthetic import make_shapes

    out = tmp_path_factory.mktemp("shapes")
    make_shapes(out, num_train=8, num_val=0, size=(128, 128), seed=0)  # 1 image without objects
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(config: Path, work: Path, nproc: int, sets: list[str]) -> None:
    """tools/train.py (real builders, float64) in a fresh process; torchrun when nproc > 1."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(3 - nproc), "DETKIT_TOY_REAL": "1"}
    launch = [sys.executable]
    if nproc > 1:
        launch += ["-m", "torch.distributed.run", "--nproc-per-node", str(nproc)]
        launch += ["--master-addr", "127.0.0.1", "--master-port", str(_free_port())]
    cmd = [*launch, str(HERE / "ddp_train64.py"), str(config), "--work-dir", str(work), "--device", "cpu"]
    proc = subprocess.run([*cmd, "--set", *sets], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


# Mask R-CNN runs every part of Faster R-CNN and its mask branch: Faster R-CNN's run only in `make test-all`
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n.startswith("faster") else n for n in sorted(SHIPPED)]
)
def test_torchrun_matches_one_process_on_shipped_config(name, shapes, tmp_path):
    folder, sizes = SHIPPED[name]
    data = [
        f"data.train.ann_file={shapes / 'train.json'}",
        f"data.train.img_dir={shapes / 'train'}",
        "data.val=null",
        "data.num_workers=0",
        "train.max_epochs=1",
        "train.log_interval=1",
    ]
    # both runs in fresh processes: the same imports before the same seeding
    for run, batch_size, nproc in (("ddp", 2, 2), ("one", 4, 1)):
        _train(
            CONFIGS / folder / f"{name}.yaml", tmp_path / run, nproc, [*data, *sizes, f"data.batch_size={batch_size}"]
        )
    a = torch.load(tmp_path / "ddp" / "latest.pth", weights_only=True)
    b = torch.load(tmp_path / "one" / "latest.pth", weights_only=True)
    assert a["meta"]["world_size"] == 2 and a["meta"]["iter"] == b["meta"]["iter"] == 2
    for part in ("model_raw", "model"):  # the trained weights and their EMA (what the checkpoint serves)
        for k, v in b[part].items():
            assert torch.allclose(a[part][k], v, atol=1e-6, rtol=0), (part, k, (a[part][k] - v).abs().max())
    if name == "yolo_n_shapes":  # BatchNorm trained with batch statistics: SyncBN made them global
        assert "synchronised over the 2 processes" in (tmp_path / "ddp" / "log.txt").read_text()
    # the logged losses of each step (each rank's share of the global mean, averaged over the ranks) agree
    ha, hb = (json.loads((tmp_path / run / "history.json").read_text()) for run in ("ddp", "one"))
    assert ha["iter"] == hb["iter"] == [1, 2] and ha["lr"] == pytest.approx(hb["lr"], rel=1e-12)
    for key, values in hb["loss"].items():
        assert ha["loss"][key] == pytest.approx(values, rel=1e-6, abs=1e-9), key
