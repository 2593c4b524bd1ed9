"""Tiny random YOLOs shared by the API tests: classes "a", "b" (64 px test pipeline), and one of the four shapes
classes with a little shapes data to evaluate on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import detkit
from detkit.config import load_config

TINY_CLASSES = ["a", "b"]
SHAPES_CLASSES = ["circle", "rectangle", "triangle", "star"]
SMALL = "model.backbone={type: CSPDarknet, depth_multiple: 0.33, width_multiple: 0.125}"


def tiny_yolo(class_names: list[str], overrides: list[str] = ()) -> torch.nn.Module:
    """An eval-mode yolo_n of width 1/8 with random weights (seed 0) and its config (``model.cfg``)."""
    torch.manual_seed(0)
    cfg = load_config("yolo_n_shapes", [SMALL, "data.val.pipeline=[{type: LetterBox, size: 64}]", *overrides])
    m = detkit.build_model(cfg, class_names=class_names)
    m.cfg = cfg
    return m.eval()


@pytest.fixture(scope="module")
def model():
    """The tiny YOLO of classes "a", "b"."""
    return tiny_yolo(TINY_CLASSES)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> dict:
    """Shapes data (2 val images of 64 px), a tiny YOLO of its classes whose data.val reads it, and a checkpoint of
    that model storing its config: ``{"dir", "model", "checkpoint"}``."""
    from detkit.data.synthetic import make_shapes

    root = tmp_path_factory.mktemp("shapes")
    make_shapes(root / "d", num_train=1, num_val=2, size=(64, 64), seed=0)
    sets = ["data.num_workers=0", "model.num_classes=4"]
    sets += [f"data.val.ann_file={root / 'd/val.json'}", f"data.val.img_dir={root / 'd/val'}"]
    m = tiny_yolo(SHAPES_CLASSES, sets)
    ckpt = root / "best.pth"
    torch.save({"model": m.state_dict(), "meta": {"config": m.cfg, "class_names": SHAPES_CLASSES}}, ckpt)
    return {"dir": Path(root / "d"), "model": m, "checkpoint": ckpt}


@pytest.fixture(scope="module")
def seg(tmp_path_factory) -> dict:
    """A Semantic FPN R18 with random weights (seed 0) whose data.val reads 2 shapes images of 64 px and their label
    maps: ``{"dir", "model"}``."""
    from detkit.data.synthetic import make_shapes

    root = tmp_path_factory.mktemp("seg") / "d"
    make_shapes(root, num_train=1, num_val=2, size=(64, 64), seed=0)
    names = (root / "sem" / "classes.txt").read_text().split()
    sets = ["data.num_workers=0", "data.val.pipeline=[]", f"data.val.classes={root / 'sem/classes.txt'}"]
    sets += [f"data.val.img_dir={root / 'val'}", f"data.val.mask_dir={root / 'sem/val'}"]
    torch.manual_seed(0)
    cfg = load_config("semfpn_r18_shapes", sets)
    m = detkit.build_model(cfg, class_names=names)
    m.cfg = cfg
    return {"dir": root, "model": m.eval()}
