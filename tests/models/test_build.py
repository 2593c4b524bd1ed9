"""build_model: a model built from a whole config carries it, so predict uses the config's test pipeline."""

from pathlib import Path

import numpy as np
import torch

import detkit
from detkit.config import load_config
from detkit.models.build import build_model

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/faster_rcnn/faster_rcnn_r18_fpn_shapes.yaml"


def test_built_model_predicts_like_init_model(tmp_path):
    cfg = load_config(CONFIG)
    torch.manual_seed(0)
    built = build_model(cfg, class_names=["circle", "rectangle", "triangle", "star"]).eval()
    assert built.cfg["data"] == cfg["data"]
    ckpt = tmp_path / "m.pth"
    torch.save({"model": built.state_dict(), "meta": {"class_names": built.class_names}}, ckpt)
    loaded = detkit.init_model(CONFIG, ckpt, device="cpu")
    img = (np.random.default_rng(0).random((150, 210, 3)) * 255).astype(np.uint8)
    a = detkit.predict(built, img, score_thr=0.0)
    b = detkit.predict(loaded, img, score_thr=0.0)
    assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["labels"], b["labels"])


def test_model_spec_alone_carries_no_config():
    cfg = load_config(CONFIG)
    assert getattr(build_model({"model": cfg["model"]}, class_names=["a", "b"]), "cfg", None) is None
