"""Tiny random-weight models of every type, built from the shipped configs with narrow layers (shared by the
explain tests; session-scoped, never modified: the tests check that explaining leaves a model as it was)."""

import numpy as np
import pytest
import torch

import detkit
from detkit.config import load_config
from detkit.data.synthetic import render_image

NARROW = [f"model.{part}=32" for part in ("neck.out_channels", "rpn_head.in_channels", "box_head.in_channels")]
TINY_RCNN = NARROW + [
    "model.box_head.representation_size=64",
    "model.rpn_head.post_nms_top_n_test=50",
    "data.val.pipeline=[{type: ResizeShortestEdge, short_sizes: [64], max_size: 128}]",
]
TINY_YOLO = [
    "model.backbone={type: CSPDarknet, depth_multiple: 0.33, width_multiple: 0.125}",
    "data.val.pipeline=[{type: LetterBox, size: 128}]",
]
TINY_SEG = ["model.neck.out_channels=16", "model.decode_head.channels=16", "data.val.pipeline=[]"]
TINY_CLS = ["data.val.pipeline=[{type: Resize, height: 64, width: 64}]"]


def build(config: str, overrides: list[str], class_names: list[str]) -> torch.nn.Module:
    """A packaged config (by name) with ``overrides``, random weights (seed 0), eval mode."""
    torch.manual_seed(0)
    cfg = load_config(config, overrides)
    model = detkit.build_model(cfg, class_names=class_names).eval()
    model.cfg = cfg
    return model


def shapes_image(seed: int = 0, size: tuple[int, int] = (96, 128)) -> np.ndarray:
    """A synthetic shapes image, RGB uint8 [H,W,3]."""
    return render_image(np.random.default_rng(seed), size)[0]


@pytest.fixture(scope="session")
def faster_rcnn():
    model = build("faster_rcnn_r18_fpn_shapes", TINY_RCNN, ["a", "b", "c"])
    with torch.no_grad():
        model.box_head.cls_score.bias[:-1] += 4.0  # random weights that still give detections
    return model


@pytest.fixture(scope="session")
def yolo():
    return build("yolo_n_shapes", TINY_YOLO, ["a", "b", "c"])


@pytest.fixture(scope="session")
def segmentor():
    return build("semfpn_r18_shapes", TINY_SEG, ["background", "a", "b"])


@pytest.fixture(scope="session")
def classifier():
    return build("resnet18_shapes", TINY_CLS, ["a", "b", "c", "d"])


@pytest.fixture(scope="session")
def image():
    return shapes_image()


@pytest.fixture(scope="session")
def make_image():
    """``make_image(seed, size)``: a shapes image of (h, w) ``size``."""
    return shapes_image
