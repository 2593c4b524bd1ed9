"""The trainer with a Segmentor on COCO-format data painted into semantic maps with a background class."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from detkit.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def test_coco_semantic_maps_with_background_train_and_evaluate(shapes, tmp_path):
    from detkit.engine import Trainer
    from detkit.engine.evaluate import evaluate_checkpoint

    split = {"type": "CocoDataset", "with_sem_seg": True, "sem_background": True, "pipeline": []}
    cfg = {
        "_base_": [
            str(ROOT / "configs/_base_/models/semfpn_r18.yaml"),
            str(ROOT / "configs/_base_/schedules/adamw_cosine.yaml"),
            str(ROOT / "configs/_base_/runtime.yaml"),
        ],
        "data": {
            "batch_size": 2,
            "num_workers": 0,
            "train": {**split, "ann_file": str(shapes / "train.json"), "img_dir": str(shapes / "train")},
            "val": {**split, "ann_file": str(shapes / "val.json"), "img_dir": str(shapes / "val")},
        },
        "train": {"max_epochs": 1, "best_metric": "sem/mIoU"},
    }
    path = tmp_path / "seg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    trainer = Trainer(load_config(path), work_dir=tmp_path / "w", device="cpu")
    assert trainer.model.class_names == ["background", "circle", "rectangle", "triangle", "star"]
    trainer.fit()
    row = json.loads((tmp_path / "w" / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0.0 <= row["sem/mIoU"] <= 1.0
    metrics, _ = evaluate_checkpoint(load_config(path), tmp_path / "w" / "best.pth", device="cpu")
    assert metrics["sem/mIoU"] == pytest.approx(row["sem/mIoU"])
    for name in ("best.pth", "latest.pth"):  # one category id per class name (4 ids for 5 names before)
        meta = torch.load(tmp_path / "w" / name, map_location="cpu", weights_only=True)["meta"]
        assert meta["class_names"] == ["background", "circle", "rectangle", "triangle", "star"]
        assert meta["cat_ids"] == [0, 1, 2, 3, 4], name  # background 0, then the json's ids
    import detkit

    model = detkit.init_model(None, tmp_path / "w" / "best.pth", device="cpu")
    assert len(model.cat_ids) == len(model.class_names)
