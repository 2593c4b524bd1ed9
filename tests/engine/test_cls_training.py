"""The trainer with a Classifier on generated classification shapes data: top-1 rises above chance."""

from __future__ import annotations

import json

import pytest

import detkit.data.datasets.image_folder  # noqa: F401  (registers ImageFolderDataset)
from detkit.data.synthetic_cls import make_shapes_cls
from detkit.evaluation.classification import ClsEvaluator


def _cfg(data: dict) -> dict:
    return {
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


def test_classifier_trains_and_top1_rises_above_chance(tmp_path):
    from detkit.engine import Trainer

    data = make_shapes_cls(tmp_path / "data", num_train=8, num_val=4, size=32, variant="shape_colour")
    cfg = _cfg(data)
    trainer = Trainer(cfg, work_dir=tmp_path / "w", device="cpu")
    assert isinstance(trainer.evaluator, ClsEvaluator)  # build_evaluator picks it for a Classifier
    assert trainer.model.class_names[:2] == ["blue_circle", "blue_rectangle"]  # the folders, sorted
    trainer.fit()
    row = json.loads((tmp_path / "w" / "metrics.jsonl").read_text().splitlines()[-1])
    chance = 1 / 12
    assert row["cls/top1"] > 2 * chance, row
    assert trainer.best["metric"] == "cls/top1"
    assert {"confusion_matrix.png", "confusion_matrix.csv", "per_class.csv"} <= {
        p.name for p in (tmp_path / "w").iterdir()
    }


@pytest.fixture(scope="module")
def tiny_cls(tmp_path_factory):
    """4-class shapes images, 2 per class and split (read only)."""
    return make_shapes_cls(tmp_path_factory.mktemp("cls"), num_train=2, num_val=2, size=32)


def test_val_without_a_class_of_train_stops_before_training_and_names_the_fix(tiny_cls, tmp_path):
    import shutil

    from detkit.engine import PreflightError, Trainer

    val = tmp_path / "val"
    shutil.copytree(tiny_cls["val_img_dir"], val)
    shutil.rmtree(val / "star")
    cfg = _cfg(tiny_cls)
    del cfg["data"]["val"]["classes"]  # the val folders alone: 3 classes against 4
    cfg["data"]["val"]["img_dir"] = str(val)
    with pytest.raises(PreflightError, match="disagree on categories"):
        Trainer(cfg, work_dir=tmp_path / "w", device="cpu")
    assert not (tmp_path / "w").exists()
    cfg["data"]["val"]["classes"] = str(tiny_cls["train_img_dir"])  # the fix: train's classes
    trainer = Trainer(cfg, work_dir=tmp_path / "w2", device="cpu")
    assert trainer.evaluator.class_names == trainer.model.class_names


def test_detection_val_data_for_a_classifier_stops_before_training(tiny_cls, shapes, tmp_path):
    from detkit.engine import PreflightError, Trainer

    cfg = _cfg(tiny_cls)
    cfg["data"]["train"] = {
        "type": "CocoCropsDataset",
        "ann_file": str(shapes / "train.json"),
        "img_dir": str(shapes / "train"),
        "pipeline": [{"type": "Resize", "height": 32, "width": 32}],
    }
    cfg["data"]["val"] = {"type": "CocoDataset", "ann_file": str(shapes / "val.json"), "img_dir": str(shapes / "val")}
    with pytest.raises(PreflightError, match="one class per image.*CocoCropsDataset"):
        Trainer(cfg, work_dir=tmp_path / "w", device="cpu")


def test_classification_val_data_for_a_detector_is_refused(tiny_cls):
    from detkit.data.build import build_dataset
    from detkit.evaluation import build_evaluator

    val = build_dataset({"type": "ImageFolderDataset", "img_dir": str(tiny_cls["val_img_dir"])})
    with pytest.raises(
        ValueError, match="ImageFolderDataset .one class per image. but the model is a OneStageDetector"
    ):
        build_evaluator({"model": {"type": "OneStageDetector", "head": {"type": "YOLOHead"}}}, val)
