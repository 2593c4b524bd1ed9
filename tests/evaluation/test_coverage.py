"""The 'predictions cover only k of n images' warning: images predicted on without detections are covered."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from detkit.analysis.common import load_gt, load_results
from detkit.evaluation import CocoEvaluator
from detkit.evaluation.checks import CategoryMismatchWarning, coverage_mismatch, predicted_images

IMAGE_IDS = [1, 2, 3, 4]


@pytest.fixture
def gt_path(tmp_path):
    images = [{"id": i, "width": 50, "height": 50, "file_name": f"{i}.png"} for i in IMAGE_IDS]
    anns = [
        {"id": i, "image_id": i, "category_id": 1, "bbox": [5.0, 5.0, 20.0, 20.0], "area": 400.0, "iscrowd": 0}
        for i in IMAGE_IDS
    ]
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "box"}]}))
    return str(path)


def _pred(n: int) -> dict:
    boxes = torch.tensor([[5.0, 5.0, 25.0, 25.0]]).repeat(n, 1)
    return {"boxes": boxes, "scores": torch.full((n,), 0.9), "labels": torch.zeros(n, dtype=torch.int64)}


def _coverage_warnings(fn) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return [str(w.message) for w in caught if issubclass(w.category, CategoryMismatchWarning)]


def _evaluated(gt_path: str, image_ids: list[int], with_dets: set[int]) -> CocoEvaluator:
    ev = CocoEvaluator(ann_file=gt_path, backend="pycocotools")
    ev.process({"image_ids": image_ids}, [_pred(1 if i in with_dets else 0) for i in image_ids])
    ev.compute()
    return ev


def test_images_predicted_on_without_detections_do_not_warn(gt_path, tmp_path):
    ev = _evaluated(gt_path, IMAGE_IDS, with_dets={1})  # the model ran on all 4, found objects in 1
    messages = _coverage_warnings(lambda: ev.write_report(tmp_path / "report"))
    assert not [m for m in messages if "cover only" in m], messages
    assert (tmp_path / "report" / "pr_curves.png").is_file()
    assert ev.last_image_ids == IMAGE_IDS and {r["image_id"] for r in ev.last_results} == {1}


def test_images_not_predicted_on_still_warn(gt_path, tmp_path):
    ev = _evaluated(gt_path, [1], with_dets={1})  # only 1 of the 4 images was predicted on
    messages = _coverage_warnings(lambda: ev.write_report(tmp_path / "report"))
    assert any("predictions cover only 1 of the 4 images" in m for m in messages), messages


def test_a_results_file_from_outside_still_warns(gt_path):
    results = [{"image_id": 1, "category_id": 1, "bbox": [5.0, 5.0, 20.0, 20.0], "score": 0.9}]
    coco_gt = load_gt(gt_path)
    messages = _coverage_warnings(lambda: load_results(results, coco_gt))
    assert any("predictions cover only 1 of the 4 images" in m for m in messages), messages


def test_predicted_images_counts_for_coverage_only_inside_the_block():
    assert coverage_mismatch([1], IMAGE_IDS) is not None
    with predicted_images(IMAGE_IDS):
        assert coverage_mismatch([1], IMAGE_IDS) is None
        assert coverage_mismatch([], IMAGE_IDS) is None
    with predicted_images([1]):
        assert "cover only 1 of the 4" in coverage_mismatch([1], IMAGE_IDS)
    assert coverage_mismatch([1], IMAGE_IDS) is not None
