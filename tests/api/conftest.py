"""A tiny random YOLO (classes "a", "b", 64 px test pipeline) shared by the API tests."""

from __future__ import annotations

import pytest
import torch

import detkit
from detkit.config import load_config

TINY_CLASSES = ["a", "b"]


@pytest.fixture(scope="module")
def model():
    """An eval-mode yolo_n of width 1/8 with random weights and its config (``model.cfg``)."""
    torch.manual_seed(0)
    small = "model.backbone={type: CSPDarknet, depth_multiple: 0.33, width_multiple: 0.125}"
    cfg = load_config("yolo_n_shapes", [small, "data.val.pipeline=[{type: LetterBox, size: 64}]"])
    m = detkit.build_model(cfg, class_names=TINY_CLASSES)
    m.cfg = cfg
    return m.eval()
