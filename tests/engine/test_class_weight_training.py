"""class_weight: balanced in a training: resolved before the model is built, logged, written to config.yaml."""

from __future__ import annotations

from pathlib import Path

import torch

from detkit.config import load_config
from detkit.data.class_freq import ClassWeights, class_counts

ROOT = Path(__file__).resolve().parents[2]


def test_config_yaml_holds_the_resolved_weights(shapes, tmp_path):
    from detkit.engine import Trainer
    from detkit.models import build_model

    overrides = [
        f"data.train.ann_file={shapes / 'train.json'}",
        f"data.train.img_dir={shapes / 'train'}",
        "data.val=null",
        "data.batch_size=2",
        "data.num_workers=0",
        "data.train.size=64",
        "+model.backbone.width_multiple=0.125",
        "train.max_epochs=1",
        "model.head.class_weight=balanced",
    ]
    cfg = load_config(ROOT / "configs" / "yolo" / "yolo_n_shapes.yaml", overrides)
    trainer = Trainer(cfg, work_dir=tmp_path / "w", device="cpu")
    counts, _ = class_counts(trainer.train_set, 4)
    expected = ClassWeights(counts, "balanced").as_list()
    torch.testing.assert_close(trainer.model.head.class_weight, torch.tensor(expected))
    trainer.fit()
    saved = load_config(tmp_path / "w" / "config.yaml")
    assert saved["model"]["head"]["class_weight"] == expected  # eval / infer rebuild the same model from it
    rebuilt = build_model(saved, class_names=list(trainer.train_set.class_names))
    torch.testing.assert_close(rebuilt.head.class_weight, torch.tensor(expected))
    log = (tmp_path / "w" / "log.txt").read_text()
    assert "class weights (model.head.class_weight: balanced), objects per class in data.train" in log
