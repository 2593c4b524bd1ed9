"""A 16-bit image holding 12-bit data (microscopes, many cameras) reads nearly black (the high byte is kept):
detkit check says so, naming the file and the fix; full-range 16-bit and 8-bit images say nothing."""

from __future__ import annotations

import json

import cv2
import numpy as np

from detkit.data.dataset_check import check_dataset
from detkit.data.image_io import low_bit_depth_note, read_image


def test_low_bit_depth_note(tmp_path):
    twelve = (np.arange(64 * 64).reshape(64, 64) % 4096).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "a.tif"), twelve)
    cv2.imwrite(str(tmp_path / "b.png"), twelve * 16)  # the same data scaled to the 16-bit range
    cv2.imwrite(str(tmp_path / "c.png"), (twelve >> 4).astype(np.uint8))
    assert read_image(tmp_path / "a.tif").max() == 15  # nearly black: what the note is about
    note = low_bit_depth_note(tmp_path / "a.tif")
    assert "a.tif" in note and "12-bit data" in note and "max 15 of 255" in note
    assert low_bit_depth_note(tmp_path / "b.png") is None and low_bit_depth_note(tmp_path / "c.png") is None


def test_check_dataset_warns_per_image(tmp_path):
    cv2.imwrite(str(tmp_path / "a.tif"), np.full((32, 32), 1000, np.uint16))
    gt = {
        "images": [{"id": 1, "file_name": "a.tif", "width": 32, "height": 32}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 8, 8], "area": 64, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "cell"}],
    }
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    report = check_dataset(tmp_path / "gt.json", tmp_path)
    (w,) = [p for p in report.warnings if p.kind == "low_bit_depth"]
    assert w.image_id == 1 and "a.tif" in w.message and report.errors == []
    assert not [p for p in check_dataset(tmp_path / "gt.json", tmp_path, read_images=False).warnings
                if p.kind == "low_bit_depth"]  # fmt: skip
