"""detkit.explain.files.GroundTruth (--gt): inputs matched to the json's images by path suffix; an input whose size
differs from its json image is left out of the pointing game and counted."""

import json
from pathlib import Path

import numpy as np

from detkit.explain.files import GroundTruth, format_summary


def _json(path):
    images = [
        {"id": 1, "file_name": "train/a.png", "height": 96, "width": 128},
        {"id": 2, "file_name": "val/a.png", "height": 64, "width": 64},
    ]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [20, 10, 50, 40], "area": 2000, "iscrowd": 0},
        {"id": 2, "image_id": 2, "category_id": 2, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0},
    ]
    cats = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def test_inputs_match_by_path_suffix_and_a_size_that_differs_is_seen(tmp_path):
    gt = GroundTruth(_json(tmp_path / "gt.json"))
    boxes, labels = gt.get(Path("/data/val/a.png"))
    assert boxes.tolist() == [[1, 2, 4, 6]] and labels.tolist() == [1]
    boxes, labels = gt.get(Path("/data/train/a.png"))
    assert np.allclose(boxes, [[20, 10, 70, 50]]) and labels.tolist() == [0]
    assert gt.get(Path("/data/val/b.png")) is None
    assert not gt.size_differs(Path("/data/val/a.png"), (64, 64))
    assert gt.size_differs(Path("/data/val/a.png"), (96, 128))


def test_summary_counts_the_inputs_left_out():
    pointing = {"trained": [3, 4], "random": [1, 4], "images": 2, "missing": 1, "other_size": 2}
    summary = dict(images=5, skipped=[], heatmaps=5, layer="neck", method="hirescam", out_dir="o", score_thr=None)
    text = format_summary({**summary, "max_dets": 1, "pointing": pointing})
    assert "1 input image(s) not in --gt" in text
    assert "2 input image(s) left out: their size differs from the --gt image of their name" in text
