"""The small classification recipes' training pipeline (configs/_base_/datasets/shapes_cls.yaml) is label-safe for
any small set: it never mirrors an image (a mirrored 2 or 7 is no digit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detkit.config import load_config
from detkit.data.transforms.pipeline import build_transforms

ROOT = Path(__file__).resolve().parents[2]
SMALL_RECIPES = ["configs/cls/resnet18_shapes.yaml", "configs/cls/cspdarknet_n_shapes.yaml"]


def _sample(image: np.ndarray) -> dict:
    return {"image": image, "labels": np.array([0], dtype=np.int64), "image_id": 0, "orig_size": image.shape[:2]}


@pytest.mark.parametrize("config", SMALL_RECIPES)
def test_small_recipe_never_mirrors(config):
    """A left-bright / right-dark 8x8 image (the digits' size) stays left-bright in 200 augmented draws."""
    pipeline = build_transforms(load_config(ROOT / config)["data"]["train"]["pipeline"])
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    image[:, :4] = 200
    for i in range(200):
        pipeline.seed((0, 0, i))
        out = pipeline(_sample(image))["image"].astype(np.float32).mean(axis=2)  # [32, 32]
        assert out.shape == (32, 32)
        left, right = out[:, :16].mean(), out[:, 16:].mean()
        assert left > right, f"{config}: draw {i} mirrored the image (left {left:.0f}, right {right:.0f})"
