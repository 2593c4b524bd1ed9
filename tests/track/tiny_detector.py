"""A narrow Faster R-CNN with random weights, made confident, saved as a checkpoint: the detector of the
tracking tool tests (fast on a shared CPU, 64 px frames)."""

from __future__ import annotations

from pathlib import Path

import torch

import detkit
from detkit.config import load_config

CONFIG = Path(__file__).resolve().parents[2] / "configs/faster_rcnn/faster_rcnn_r18_fpn_shapes.yaml"
NARROW = [
    "model.neck.out_channels=32",
    "model.rpn_head.in_channels=32",
    "model.box_head.in_channels=32",
    "model.box_head.representation_size=64",
    "model.rpn_head.pre_nms_top_n_test=100",
    "model.rpn_head.post_nms_top_n_test=20",
    "model.box_head.max_per_img=8",
    "data.val.pipeline=[{type: ResizeShortestEdge, short_sizes: [64], max_size: 128}]",
]
NAMES = ["circle", "rectangle", "triangle", "star"]


def save_tiny_detector(path: Path) -> Path:
    """Write the detector's checkpoint (weights, config, class names) to ``path``; returns it."""
    torch.manual_seed(0)
    cfg = load_config(CONFIG, NARROW)
    model = detkit.build_model(cfg, class_names=NAMES)
    with torch.no_grad():
        model.box_head.cls_score.bias[0] += 6.0  # random boxes, but confident ones: tracks to follow
    torch.save({"model": model.state_dict(), "meta": {"config": cfg, "class_names": NAMES}}, path)
    return path
