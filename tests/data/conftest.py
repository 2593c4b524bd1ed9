"""Fixtures that write tiny COCO datasets (json + PNG images) into tmp_path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils


def _disk_rle(h: int, w: int, cy: int, cx: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.uint8)


def _uncompressed_rle(m: np.ndarray) -> dict:
    """Column-major run lengths starting with zeros, as COCO's uncompressed RLE."""
    flat = np.asfortranarray(m).reshape(-1, order="F")
    counts, val, run = [], 0, 0
    for v in flat:
        if v == val:
            run += 1
        else:
            counts.append(run)
            val, run = v, 1
    counts.append(run)
    return {"size": list(m.shape), "counts": [int(c) for c in counts]}


def base_coco() -> dict:
    """Three images (ids 1, 2, 5; 5 has no annotations), categories with ids 10, 3, 7 (unsorted).

    Image 1 (64x48): a polygon 'ant' and a compressed-RLE 'zebra'. Image 2 (80x60): an uncompressed
    RLE 'moose' and a crowd 'ant'.
    """
    rle = mask_utils.encode(np.asfortranarray(_disk_rle(48, 64, 30, 44, 8)))
    rle["counts"] = rle["counts"].decode("ascii")
    moose = np.zeros((60, 80), np.uint8)
    moose[10:30, 20:50] = 1
    crowd = np.zeros((60, 80), np.uint8)
    crowd[40:58, 2:30] = 1
    return {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 64, "height": 48},
            {"id": 2, "file_name": "sub/b.png", "width": 80, "height": 60},
            {"id": 5, "file_name": "c.png", "width": 64, "height": 64},
        ],
        "categories": [{"id": 10, "name": "zebra"}, {"id": 3, "name": "ant"}, {"id": 7, "name": "moose"}],
        "annotations": [
            {
                "id": 11,
                "image_id": 1,
                "category_id": 3,
                "bbox": [4, 6, 20, 10],
                "iscrowd": 0,
                "area": 200,
                "segmentation": [[4, 6, 24, 6, 24, 16, 14, 16, 4, 12]],
            },
            {
                "id": 12,
                "image_id": 1,
                "category_id": 10,
                "bbox": [36, 22, 17, 17],
                "iscrowd": 0,
                "area": 200,
                "segmentation": rle,
            },
            {
                "id": 21,
                "image_id": 2,
                "category_id": 7,
                "bbox": [20, 10, 30, 20],
                "iscrowd": 0,
                "area": 600,
                "segmentation": _uncompressed_rle(moose),
            },
            {
                "id": 22,
                "image_id": 2,
                "category_id": 3,
                "bbox": [2, 40, 28, 18],
                "iscrowd": 1,
                "area": 504,
                "segmentation": _uncompressed_rle(crowd),
            },
        ],
    }


class CocoFiles(SimpleNamespace):
    """``root``, ``ann_file``, ``img_dir``, ``data`` (the json written); ``write(data)`` rewrites it."""

    def write(self, data: dict | None = None, text: str | None = None) -> Path:
        self.ann_file.write_text(text if text is not None else json.dumps(data), encoding="utf-8")
        if data is not None:
            self.data = data
        return self.ann_file

    def edit(self, change) -> dict:
        """Write a copy of ``data`` changed in place by ``change(data)``; returns the copy."""
        data = copy.deepcopy(self.data)
        change(data)
        self.write(data)
        return data

    def image_path(self, file_name: str) -> Path:
        return self.img_dir / file_name


@pytest.fixture
def coco_files(tmp_path: Path) -> CocoFiles:
    """A valid tiny COCO dataset on disk; tests copy ``files.data``, break it and ``files.write`` it."""
    img_dir = tmp_path / "images"
    (img_dir / "sub").mkdir(parents=True)
    data = base_coco()
    rng = np.random.default_rng(0)
    for im in data["images"]:
        bgr = rng.integers(0, 256, (im["height"], im["width"], 3), dtype=np.uint8)
        assert cv2.imwrite(str(img_dir / im["file_name"]), bgr)
    files = CocoFiles(root=tmp_path, img_dir=img_dir, ann_file=tmp_path / "ann.json", data=None)
    files.write(copy.deepcopy(data))
    return files


class SegFiles(SimpleNamespace):
    """``img_dir`` (``im0.jpg`` ...), ``mask_dir`` (``im0.png`` ... label maps), ``classes``."""


@pytest.fixture
def seg_files(tmp_path: Path) -> SegFiles:
    """Three 56x40 images with label maps of 3 classes (values 0..2 and 255) for SegFolderDataset."""
    from PIL import Image

    rng = np.random.default_rng(0)
    img_dir, mask_dir = tmp_path / "seg_img", tmp_path / "seg_ann"
    img_dir.mkdir()
    mask_dir.mkdir()
    for i in range(3):
        assert cv2.imwrite(str(img_dir / f"im{i}.jpg"), rng.integers(0, 255, (40, 56, 3), dtype=np.uint8))
        sem = rng.integers(0, 3, (40, 56)).astype(np.uint8)
        sem[:3] = 255
        Image.fromarray(sem).save(mask_dir / f"im{i}.png")
    return SegFiles(img_dir=img_dir, mask_dir=mask_dir, classes=["a", "b", "c"])
