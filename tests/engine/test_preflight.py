"""Checks before the first iteration: categories, num_classes, the val set, the metric name, the work dir."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from detkit.engine import PreflightError, Trainer
from detkit.engine.preflight import check_best_metric, check_categories, metric_names


def test_categories_must_agree_in_names_order_and_ids():
    train = SimpleNamespace(class_names=["cat", "dog"], label_to_cat_id={0: 1, 1: 2}, ann_file="t.json")
    check_categories(train, SimpleNamespace(class_names=["cat", "dog"], label_to_cat_id={0: 1, 1: 2}))
    with pytest.raises(PreflightError, match=r"data.train \(t.json\) and data.val.*label 0 is 'cat'.*'dog'"):
        check_categories(train, SimpleNamespace(class_names=["dog", "cat"]))
    with pytest.raises(PreflightError, match="2 categories against 3"):
        check_categories(train, SimpleNamespace(class_names=["cat", "dog", "bird"]))
    with pytest.raises(PreflightError, match="different ids.*label 1 is 2 in one and 7"):
        check_categories(train, SimpleNamespace(class_names=["cat", "dog"], label_to_cat_id={0: 1, 1: 7}))


def test_train_val_disagreement_stops_before_training(toy, tmp_path):
    cfg = toy.toy_config()
    cfg["data"]["val"]["num_classes"] = 3
    with pytest.raises(PreflightError, match="disagree on categories"):
        Trainer(cfg, work_dir=tmp_path / "w", device="cpu")
    assert not (tmp_path / "w").exists()  # nothing written: no log, no config.yaml


def test_num_classes_must_match_the_data(toy, tmp_path):
    cfg = toy.toy_config()
    cfg["model"]["num_classes"] = 5
    with pytest.raises(PreflightError, match="model.num_classes is 5 but data.train has 2 classes.*num_classes: 2"):
        Trainer(cfg, work_dir=tmp_path / "w", device="cpu")


def test_val_set_must_load_and_hold_samples(toy, tmp_path):
    cfg = toy.toy_config()
    cfg["data"]["val"]["missing_from"] = 0
    with pytest.raises(PreflightError, match=r"data.val: its first sample does not load \(FileNotFoundError: image"):
        Trainer(cfg, work_dir=tmp_path / "w", device="cpu")
    cfg["data"]["val"] = {"type": "ToyDataset", "num_samples": 0}
    with pytest.raises(PreflightError, match="data.val has no samples"):
        Trainer(cfg, work_dir=tmp_path / "w", device="cpu")


def test_best_metric_must_be_produced_by_the_evaluator(toy, tmp_path):
    with pytest.raises(PreflightError, match="train.best_metric 'bbox/mAP'.*bbox/AP, toy/l1.*bbox/AP"):
        Trainer(toy.toy_config(best_metric="bbox/mAP"), work_dir=tmp_path / "w", device="cpu")
    cfg = toy.toy_config(best_metric="bbox/mAP")
    del cfg["data"]["val"]  # no evaluation: the metric is never used
    Trainer(cfg, work_dir=tmp_path / "w", device="cpu")


def test_metric_names_of_detkit_evaluators(tmp_path):
    from detkit.evaluation import CocoEvaluator, SemSegEvaluator

    ann = tmp_path / "a.json"
    ann.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "x"}]}))
    coco = CocoEvaluator(ann_file=ann, iou_types=("bbox", "segm"))
    names = metric_names(coco)
    assert "bbox/AP" in names and "segm/AP50" in names and len(names) == 24
    sem = SemSegEvaluator(num_classes=3)
    assert metric_names(sem) == ["sem/mIoU", "sem/mAcc", "sem/aAcc"]
    with pytest.raises(PreflightError, match="SemSegEvaluator.*sem/mIoU"):
        check_best_metric(sem, "bbox/AP")
    assert metric_names(object()) is None  # unknown evaluator: not checked
    check_best_metric(object(), "anything")


def test_val_ground_truth_without_area_fails_before_training(shapes, tmp_path):
    from detkit.data.build import build_dataset
    from detkit.engine.preflight import check_evaluator_data
    from detkit.evaluation import CocoEvaluator

    val = json.loads((shapes / "val.json").read_text())
    del val["annotations"][1]["area"]
    ann = tmp_path / "val_no_area.json"
    ann.write_text(json.dumps(val))
    dataset = build_dataset({"type": "CocoDataset", "ann_file": str(ann), "img_dir": str(shapes / "val")})
    evaluator = CocoEvaluator(dataset=dataset)
    message = rf"data.val \({ann}\) cannot be evaluated: {ann}: annotation id={val['annotations'][1]['id']} .*no area"
    with pytest.raises(PreflightError, match=message):
        check_evaluator_data(evaluator, dataset)
    check_evaluator_data(CocoEvaluator(ann_file=shapes / "val.json"), dataset)  # a complete file passes
    check_evaluator_data(object(), dataset)  # an evaluator without check_gt: nothing to check
