"""Losses that collapse to zero while the batches hold objects (a learning rate far too high): one warning, once;
none for a healthy run or for batches without objects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from detkit_toy import ToyDataset, ToyDetector

from detkit.config import load_config
from detkit.engine import Trainer
from detkit.engine.loss_watch import CollapseWatch, count_objects
from detkit.registry import DATASETS, DETECTORS

ROOT = Path(__file__).resolve().parents[2]
COLLAPSED = "training losses collapsed to 0"


@DETECTORS.register
class ToyZeroLossDetector(ToyDetector):
    """ToyDetector whose every loss term is exactly 0 (still attached to the weights): a collapsed model."""

    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        logits, boxes = self._raw(batch)
        zero = (logits.sum() + boxes.sum()) * 0.0
        return {"toy/cls": zero, "toy/box": zero}


@DATASETS.register
class ToyEmptyDataset(ToyDataset):
    """ToyDataset whose images hold no object (empty boxes and labels)."""

    def __getitem__(self, i: int) -> dict:
        sample = super().__getitem__(i)
        return {**sample, "boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64)}


def _warnings(work: Path) -> list[str]:
    return [line for line in (work / "log.txt").read_text().splitlines() if COLLAPSED in line]


def test_count_objects_and_the_watch_window():
    batch = {"targets": [{"boxes": torch.zeros(3, 4)}, {"boxes": torch.zeros(0, 4)}, {"labels": torch.zeros(1)}]}
    assert count_objects(batch) == 3 and count_objects(None) == 0 and count_objects({"targets": []}) == 0
    trainer = type("T", (), {"iter": 8, "_lr": 0.5, "cfg": {"optimizer": {"lr": 0.25}}, "main": False})()
    watch = CollapseWatch()
    watch.add(0)
    assert watch.check({"loss": 0.0, "a": 0.0}, trainer) is None  # no object in the window: not watched
    watch.add(4)
    assert watch.check({"loss": 0.3, "a": 0.0}, trainer) is None  # a term still learns
    watch.add(2)
    watch.add(5)
    message = watch.check({"loss": 0.0, "a": 1e-9}, trainer)
    assert "at iteration 8" in message and "last 2 iteration(s)" in message and "7 object(s)" in message
    assert "lr 0.5 now (optimizer.lr 0.25)" in message and "10x to 100x lower" in message
    watch.add(5)
    assert watch.check({"loss": 0.0}, trainer) is None  # once per run


def test_zero_losses_with_objects_warn_once_and_without_objects_not(toy, tmp_path):
    cfg = toy.toy_config(max_epochs=2, log_interval=2)  # 4 iterations per epoch: 4 log windows
    cfg["model"]["type"] = "ToyZeroLossDetector"
    Trainer(cfg, work_dir=tmp_path / "objects", device="cpu").fit()
    lines = _warnings(tmp_path / "objects")
    assert len(lines) == 1 and " WARNING " in lines[0], lines
    assert "at iteration 2:" in lines[0] and "4 object(s)" in lines[0] and "optimizer.lr 0.05" in lines[0]

    cfg["data"]["train"] = {"type": "ToyEmptyDataset", "num_samples": 8}
    cfg["data"]["val"] = None  # (the toy evaluator reads a box per image)
    Trainer(cfg, work_dir=tmp_path / "empty", device="cpu").fit()
    assert _warnings(tmp_path / "empty") == []


def test_a_healthy_toy_run_does_not_warn(toy, tmp_path):
    Trainer(toy.toy_config(max_epochs=1, log_interval=1), work_dir=tmp_path / "w", device="cpu").fit()
    assert _warnings(tmp_path / "w") == []


def _yolo(shapes: Path, *overrides: str) -> dict:
    return load_config(
        ROOT / "configs" / "yolo" / "yolo_n_shapes.yaml",
        [
            f"data.train.ann_file={shapes / 'train.json'}",
            f"data.train.img_dir={shapes / 'train'}",
            "data.val=null",
            "data.batch_size=2",
            "data.num_workers=0",
            "data.train.size=64",
            "+model.backbone.width_multiple=0.125",
            "train.log_interval=2",
            "train.ema=null",
            *overrides,
        ],
    )


def test_a_tiny_yolo_with_a_huge_learning_rate_is_told(shapes, tmp_path):
    """optimizer.lr=1000: the predictions leave every object, no anchor gets a positive target, every loss is
    0.0000 while the weights stay finite; the run says why, once, and goes on."""
    trainer = Trainer(_yolo(shapes, "optimizer.lr=1000", "train.max_iters=12"), work_dir=tmp_path / "w", device="cpu")
    trainer.fit()
    lines = _warnings(tmp_path / "w")
    assert len(lines) == 1, lines
    assert "optimizer.lr 1000)" in lines[0] and "learning rate far too high" in lines[0]
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_a_tiny_yolo_with_its_own_learning_rate_is_not_told(shapes, tmp_path):
    Trainer(_yolo(shapes, "train.max_iters=8"), work_dir=tmp_path / "w", device="cpu").fit()
    assert _warnings(tmp_path / "w") == []
