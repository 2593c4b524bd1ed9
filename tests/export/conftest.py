"""Tiny random-weight detectors for the export tests, shared by every file here (session-scoped, never modified)."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import detkit
from detkit.config import load_config
from detkit.data.collate import collate
from detkit.data.synthetic import render_image
from detkit.models.detectors.one_stage import OneStageDetector

ROOT = Path(__file__).resolve().parents[2]
# narrow channels and few proposals: a forward pass in milliseconds
TINY_RCNN = [
    f"model.{key}={value}"
    for key, value in {
        "neck.out_channels": 32,
        "rpn_head.in_channels": 32,
        "box_head.in_channels": 32,
        "box_head.representation_size": 64,
        "rpn_head.pre_nms_top_n_test": 200,
        "rpn_head.post_nms_top_n_test": 60,
    }.items()
] + ["data.val.pipeline=[{type: ResizeShortestEdge, short_sizes: [96], max_size: 160}]"]
TINY_MASK_HEAD = ["model.mask_head.in_channels=32", "model.mask_head.conv_channels=16"]
TINY_YOLO = dict(
    backbone={"type": "CSPDarknet", "depth_multiple": 0.33, "width_multiple": 0.125}, neck={"type": "PAFPN"}
)
SEMFPN_CONFIG = "configs/seg/semfpn_r18_shapes.yaml"
TINY_SEMFPN = ["model.neck.out_channels=32", "model.decode_head.channels=32"]
SEM_CLASSES = ["background", "circle", "rectangle"]


def shapes_images(sizes, seed=8):
    """Synthetic shapes images (no large constant areas, so random-weight models rank without ties)."""
    return [render_image(np.random.default_rng([seed, i]), size)[0] for i, size in enumerate(sizes)]


def _tiny_rcnn(config: str, overrides: list[str]):
    torch.manual_seed(0)
    cfg = load_config(ROOT / config, TINY_RCNN + overrides)
    m = detkit.build_model(cfg, class_names=["a", "b", "c"]).eval()
    with torch.no_grad():
        m.box_head.cls_score.bias[:-1] += 4.0  # random weights that still give detections
    m.cfg = cfg
    return m


@pytest.fixture(scope="session")
def shapes():
    """``shapes(sizes, seed=8)``: a list of RGB uint8 shapes images of the given (h, w)."""
    return shapes_images


@pytest.fixture(scope="session")
def faster_rcnn():
    return _tiny_rcnn("configs/faster_rcnn/faster_rcnn_r18_fpn_shapes.yaml", [])


@pytest.fixture(scope="session")
def mask_rcnn():
    return _tiny_rcnn("configs/mask_rcnn/mask_rcnn_r18_fpn_shapes.yaml", TINY_MASK_HEAD)


def tiny_semfpn(overrides=()):
    """A random Semantic FPN R18 (the shapes config, narrow FPN and decoder) whose class logits spread out
    (the classifier's weights ~N(0, 0.5) instead of 0.01): few pixels tie between classes."""
    torch.manual_seed(0)
    cfg = load_config(ROOT / SEMFPN_CONFIG, TINY_SEMFPN + list(overrides))
    m = detkit.build_model(cfg, class_names=SEM_CLASSES).eval()
    with torch.no_grad():
        torch.nn.init.normal_(m.decode_head.classifier.conv.weight, std=0.5)
    return m


@pytest.fixture(scope="session")
def semantic():
    return tiny_semfpn()


@pytest.fixture(scope="session")
def make_semfpn():
    """``make_semfpn(overrides)``: a fresh :func:`tiny_semfpn` with config overrides (``key=value`` strings)."""
    return tiny_semfpn


@pytest.fixture(scope="session")
def yolo():
    torch.manual_seed(0)
    m = OneStageDetector(**TINY_YOLO, head={"type": "YOLOHead", "score_thr": 0.7}, num_classes=3).eval()
    for mod in m.modules():  # spread-out statistics and class scores: a dozen distinct detections
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_var.uniform_(0.5, 2.0)
            mod.running_mean.uniform_(-0.5, 0.5)
    for branch in m.head.cls_branch:
        torch.nn.init.constant_(branch[-1].bias, 0.5)
        torch.nn.init.normal_(branch[-1].weight, std=1.0)
    m.cfg = {"data": {"val": {"pipeline": [{"type": "LetterBox", "size": 128}]}}}
    return m


@pytest.fixture(scope="session")
def yolo_seg():
    """A random YOLO-seg model whose scores spread out: BN statistics measured on shapes images, class logits ~N(0,4)."""
    torch.manual_seed(0)
    head = {"type": "YOLOSegHead", "num_protos": 8, "proto_channels": 16, "det": {"score_thr": 0.5}}
    m = OneStageDetector(**TINY_YOLO, head=head, num_classes=3)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.momentum = None  # cumulative average over the calibration pass
    for branch in m.head.det.cls_branch:
        torch.nn.init.normal_(branch[-1].weight, std=2.0 / math.sqrt(branch[-1].weight[0].numel()))
        torch.nn.init.zeros_(branch[-1].bias)
    calibration = collate([{"image": im, "image_id": i} for i, im in enumerate(shapes_images([(128, 128)] * 4, 7))])
    with torch.no_grad():
        m.train()
        m.forward_raw(m.preprocess(calibration))
    m.eval()
    m.cfg = {"data": {"val": {"pipeline": [{"type": "LetterBox", "size": 128}]}}}
    return m
