"""Instance-segmentation recipes keep best.pth by mask AP (``segm/AP``), as Mask R-CNN's do."""

from __future__ import annotations

from pathlib import Path

import pytest

from detkit.config import load_config
from detkit.evaluation import _has_masks

CONFIGS = Path(__file__).resolve().parents[2] / "detkit" / "configs"


def _instance_seg(cfg: dict) -> bool:
    """A detector the evaluator scores with masks: Mask R-CNN's mask_head, a YOLO prototype-mask head."""
    model = cfg.get("model") or {}
    return model.get("type") in ("TwoStageDetector", "OneStageDetector") and _has_masks(model, None)


SEG_RECIPES = sorted(p for p in CONFIGS.rglob("*.yaml") if "_base_" not in p.parts and _instance_seg(load_config(p)))


def test_the_yolo_and_mask_rcnn_seg_recipes_are_found():
    found = {p.stem for p in SEG_RECIPES}
    assert {"yolo_n_seg_shapes", "yolo_n_seg_coco", "yolo_s_seg_coco", "mask_rcnn_r18_fpn_shapes"} <= found


@pytest.mark.parametrize("path", SEG_RECIPES, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_instance_segmentation_recipes_keep_best_by_segm_ap(path):
    assert load_config(path)["train"]["best_metric"] == "segm/AP"
