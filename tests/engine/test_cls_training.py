"""The trainer with a Classifier on generated classification shapes data: top-1 rises above chance."""

from __future__ import annotations

import json

import pytest

import detkit.data.datasets.image_folder  # noqa: F401  (registers ImageFolderDataset)
from detkit.data.synthetic_cls import make_shapes_cls
from detkit.evaluation.classification import ClsEvaluator


@pytest.fixture
def cls_evaluator(monkeypatch):
    """The trainer builds a ClsEvaluator for the validation data (what detkit.evaluation.build_evaluator will do)."""
    from detkit.engine import builders

    monkeypatch.setattr(builders, "build_evaluator", lambda cfg, ds: ClsEvaluator(ds.num_classes, ds.class_names))


def test_classifier_trains_and_top1_rises_above_chance(tmp_path, cls_evaluator):
    from detkit.engine import Trainer

    data = make_shapes_cls(tmp_path / "data", num_train=8, num_val=4, size=32, variant="shape_colour")
    cfg = {
        "model": {
            "type": "Classifier",
            "num_classes": None,
            "backbone": {"type": "ResNet", "depth": 18, "norm": "BN", "frozen_stages": -1, "out_indices": [3]},
            "head": {"type": "ClsHead", "label_smoothing": 0.1},
        },
        "data": {
            "batch_size": 16,
            "num_workers": 0,
            "train": {
                "type": "ImageFolderDataset",
                "img_dir": str(data["train_img_dir"]),
                "pipeline": [{"type": "HorizontalFlip", "p": 0.5}],
            },
            "val": {
                "type": "ImageFolderDataset",
                "img_dir": str(data["val_img_dir"]),
                "classes": str(data["train_img_dir"]),
            },
        },
        "optimizer": {"type": "AdamW", "lr": 0.003, "weight_decay": 0.01, "base_batch_size": 16},
        "scheduler": {"type": "cosine", "warmup_iters": 5, "min_lr_ratio": 0.1},
        "train": {"max_epochs": 12, "eval_interval": 12, "best_metric": "cls/top1", "log_interval": 5},
    }
    trainer = Trainer(cfg, work_dir=tmp_path / "w", device="cpu")
    assert trainer.model.class_names[:2] == ["blue_circle", "blue_rectangle"]  # the folders, sorted
    trainer.fit()
    row = json.loads((tmp_path / "w" / "metrics.jsonl").read_text().splitlines()[-1])
    chance = 1 / 12
    assert row["cls/top1"] > 2 * chance, row
    assert trainer.best["metric"] == "cls/top1"
    assert {"confusion_matrix.png", "confusion_matrix.csv", "per_class.csv"} <= {
        p.name for p in (tmp_path / "w").iterdir()
    }
