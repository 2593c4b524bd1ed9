"""The trainer with a YOLO model on the shapes data: MixDataset (mosaic, close_mosaic), EMA, COCO evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detkit.config import load_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("config,metric", [("yolo_n_shapes.yaml", "bbox/AP"), ("yolo_n_seg_shapes.yaml", "segm/AP")])
def test_yolo_trains_with_mosaic_closed_at_the_end(shapes, tmp_path, config, metric):
    from detkit.engine import Trainer

    overrides = [
        f"data.train.ann_file={shapes / 'train.json'}",
        f"data.train.img_dir={shapes / 'train'}",
        f"data.val.ann_file={shapes / 'val.json'}",
        f"data.val.img_dir={shapes / 'val'}",
        "data.batch_size=2",
        "data.num_workers=0",
        "data.train.size=64",
        "data.val.pipeline=[{type: LetterBox, size: 64}]",
        "+model.backbone.width_multiple=0.125",
        "train.max_epochs=2",
        "train.log_interval=1",
        "data.train.close_mosaic.epochs=1",
    ]
    cfg = load_config(ROOT / "configs" / "yolo" / config, overrides)
    trainer = Trainer(cfg, work_dir=tmp_path / "w", device="cpu")
    trainer.fit()
    ds = trainer.train_set
    assert ds.close_cfg["max_epochs"] == 2 and ds.mosaic_open(0) and not ds.mosaic_open(1)
    rows = [json.loads(line) for line in (tmp_path / "w" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["epoch"] == 2 and metric in rows[-1]
    assert (tmp_path / "w" / "best.pth").is_file()
