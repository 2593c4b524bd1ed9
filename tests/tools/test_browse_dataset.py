"""tools/browse_dataset.py: ground truth raw and after the pipeline, one file each or a contact sheet."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
_spec = importlib.util.spec_from_file_location("detkit_tool_browse", ROOT / "tools" / "browse_dataset.py")
browse_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(browse_tool)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    from detkit.data.synthetic import make_shapes

    root = tmp_path_factory.mktemp("shapes")
    p = make_shapes(root, num_train=3, num_val=2, size=(64, 64), seed=0, empty_fraction=0.0)
    split = {
        "type": "CocoDataset",
        "ann_file": str(p["train_ann_file"]),
        "img_dir": str(p["train_img_dir"]),
        "with_masks": True,
        "with_sem_seg": True,
        "sem_background": True,
        "pipeline": [
            {"type": "ResizeShortestEdge", "short_sizes": [96], "max_size": 200},
            {"type": "HorizontalFlip", "p": 1.0},
        ],
    }
    cfg = {"model": {"type": "TwoStageDetector"}, "data": {"batch_size": 1, "train": split}}
    path = root / "browse.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, p


def test_raw_and_pipeline(config, tmp_path, capsys):
    cfg, p = config
    assert browse_tool.main([str(cfg), "--raw", "--out-dir", str(tmp_path / "raw"), "--num", "2"]) == 0
    assert browse_tool.main([str(cfg), "--out-dir", str(tmp_path / "aug"), "--num", "2"]) == 0
    raw, aug = sorted((tmp_path / "raw").glob("*.jpg")), sorted((tmp_path / "aug").glob("*.jpg"))
    assert [f.name for f in raw] == ["000_1.jpg", "001_2.jpg"] and len(aug) == 2
    r, a = cv2.imread(str(raw[0])), cv2.imread(str(aug[0]))
    assert r.shape == (64, 64, 3) and a.shape == (96, 96, 3)  # the pipeline's resize
    stored = cv2.imread(str(p["train_img_dir"] / "000001.png"))
    assert np.abs(r.astype(int) - stored.astype(int)).mean() > 1  # ground truth drawn on it
    # the flip moved the drawing: the augmented image resized back matches the mirrored raw drawing best
    back = cv2.resize(a, (64, 64), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(back - r[:, ::-1].astype(int)).mean() < np.abs(back - r.astype(int)).mean()
    assert "2 samples of data.train (raw)" in capsys.readouterr().out


def test_contact_sheet(config, tmp_path):
    cfg, _ = config
    assert (
        browse_tool.main(
            [str(cfg), "--contact-sheet", "--out-dir", str(tmp_path), "--num", "3", "--cell", "128", "--shuffle"]
        )
        == 0
    )
    sheet = cv2.imread(str(tmp_path / "contact_sheet.jpg"))
    assert sheet.shape[1] == 2 * 128 and sheet.shape[0] == 2 * (128 + 18)  # 3 samples on a 2x2 grid


def test_missing_split_is_one_line_error(config, tmp_path, capsys):
    cfg, _ = config
    assert browse_tool.main([str(cfg), "--split", "val", "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no data.val section" in err and err.count("\n") == 1


def test_a_classification_sample_shows_its_class():
    """A classification sample (one label, no boxes) is enlarged as infer draws classes, its class name written."""
    from detkit.analysis.browse import draw_sample
    from detkit.data.datasets.image_folder import class_sample

    image = np.full((32, 48, 3), 200, np.uint8)
    drawn = draw_sample(class_sample(image, 1, 0), ["cat", "dog"])
    assert drawn.shape == (192, 288, 3)  # shorter side 192 px, nearest neighbour
    assert (drawn[:20, :60] != 200).any() and (drawn[-20:, -60:] == 200).all()  # the legend in the corner only
    detection = draw_sample({"image": image, "boxes": np.zeros((0, 4)), "labels": np.zeros(0)}, ["cat"])
    assert detection.shape == image.shape  # detection samples keep their size
