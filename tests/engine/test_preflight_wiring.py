"""The trainer runs the data-against-model checks of detkit.engine.preflight_data before the first iteration."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from detkit.config import load_config
from detkit.engine import PreflightError, Trainer

ROOT = Path(__file__).resolve().parents[2]


def _cfg(shapes: Path, config: str, *overrides: str) -> dict:
    base = [
        f"data.train.ann_file={shapes / 'train.json'}",
        f"data.train.img_dir={shapes / 'train'}",
        f"data.val.ann_file={shapes / 'val.json'}",
        f"data.val.img_dir={shapes / 'val'}",
        "data.batch_size=2",
        "data.num_workers=0",
        "+model.backbone.width_multiple=0.125",
        "train.max_epochs=1",
    ]
    return load_config(ROOT / "configs" / "yolo" / config, [*base, *overrides])


def test_yolo_seg_without_masks_stops_before_training(shapes, tmp_path):
    cfg = _cfg(shapes, "yolo_n_seg_shapes.yaml", "data.train.dataset.with_masks=false")
    with pytest.raises(PreflightError, match="set data.train.dataset.with_masks: true"):
        Trainer(cfg, work_dir=tmp_path / "w", device="cpu")
    assert not (tmp_path / "w").exists()  # refused before the work dir is made


def test_train_and_val_sizes_that_differ_are_a_warning(shapes, tmp_path, caplog):
    cfg = _cfg(shapes, "yolo_n_shapes.yaml", "data.train.size=64", "data.val.pipeline=[{type: LetterBox, size: 96}]")
    with caplog.at_level(logging.WARNING, logger="detkit"):
        Trainer(cfg, work_dir=tmp_path / "w", device="cpu")
    assert any(
        "data.train.size is 64 (MixDataset) but data.val.pipeline.0.size is 96" in r.getMessage()
        for r in caplog.records
        if r.levelname == "WARNING"
    )


def test_a_classes_folder_that_is_missing_is_named_by_its_key(tmp_path):
    """A packaged classifier pointed at one's own folders keeps its data.val.classes (the shapes folder): the
    error names the key and the value to give (the data.train.img_dir given)."""
    import cv2
    import numpy as np

    from detkit.data.validate import DatasetError
    from detkit.engine.parts import build_data

    for split in ("train", "val"):
        for name in ("cat", "dog"):
            (tmp_path / split / name).mkdir(parents=True)
            cv2.imwrite(str(tmp_path / split / name / "a.png"), np.zeros((8, 8, 3), np.uint8))
    split = {"type": "ImageFolderDataset", "pipeline": []}
    data = {
        "batch_size": 2,
        "num_workers": 0,
        "train": {**split, "img_dir": str(tmp_path / "train")},
        "val": {**split, "img_dir": str(tmp_path / "val"), "classes": str(tmp_path / "no_such_folder")},
    }
    with pytest.raises(DatasetError) as info:
        build_data({"data": data, "seed": 0, "model": {}})
    message = str(info.value)
    assert message.startswith("data.val.classes: classes folder ") and "no_such_folder not found" in message
    assert message.endswith(f"--set data.val.classes={tmp_path / 'train'} (the data.train.img_dir given)")
