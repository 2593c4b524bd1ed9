"""tools/infer.py on a folder with good images and a corrupt file: drawn outputs, predictions.json, a summary."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import detkit
from detkit.config import load_config

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/faster_rcnn/faster_rcnn_r18_fpn_shapes.yaml"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    cfg = load_config(CONFIG, ["data.val.pipeline=[{type: ResizeShortestEdge, short_sizes: [128], max_size: 256}]"])
    model = detkit.build_model(cfg, class_names=["a", "b"])
    with torch.no_grad():
        model.box_head.cls_score.bias[:-1] += 4.0  # random weights, but detections above the threshold
    path = tmp_path_factory.mktemp("ckpt") / "model.pth"
    torch.save({"model": model.state_dict(), "meta": {"config": cfg, "class_names": ["a", "b"],
                                                      "cat_ids": [3, 8]}}, path)
    return path


def test_folder_with_corrupt_file(checkpoint, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.png", "sub/b.jpg"):
        cv2.imwrite(str(src / name), rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
    (src / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "tools/infer.py"), str(CONFIG), str(checkpoint), str(src),
                           "--out-dir", str(out), "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "2 images processed, 1 unreadable skipped" in proc.stdout
    assert "broken.jpg" in proc.stdout + proc.stderr
    assert (out / "a.jpg").is_file() and (out / "b.jpg").is_file()
    preds = json.loads((out / "predictions.json").read_text())
    assert preds and {p["category_id"] for p in preds} <= {3, 8}
    # the results load into pycocotools against a ground truth naming the same images
    from pycocotools.coco import COCO

    gt = COCO()
    gt.dataset = {"images": [{"id": i, "width": 128, "height": 96} for i in range(3)],
                  "annotations": [], "categories": [{"id": 3, "name": "a"}, {"id": 8, "name": "b"}]}
    gt.createIndex()
    res = gt.loadRes(str(out / "predictions.json"))
    assert len(res.getAnnIds()) == len(preds)


def test_missing_input_is_one_line_error(checkpoint, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "tools/infer.py"), str(CONFIG), str(checkpoint),
                           str(tmp_path / "nothing_here")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "no such file" in proc.stderr and "Traceback" not in proc.stderr
