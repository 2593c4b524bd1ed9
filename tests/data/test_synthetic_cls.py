"""The classification shapes data: layout, classes, determinism, grey images, a smaller rewrite."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from detkit.data.datasets.image_folder import ImageFolderDataset
from detkit.data.synthetic_cls import cls_class_names, make_shapes_cls, render_crop


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))


def test_layout_classes_and_counts(tmp_path):
    paths = make_shapes_cls(tmp_path / "out", num_train=3, num_val=2, size=24)
    root = paths["root"]
    assert paths["classes_file"].read_text().split() == ["circle", "rectangle", "triangle", "star"]
    assert _files(root / "train")[:3] == ["circle/000001.png", "circle/000002.png", "circle/000003.png"]
    train = ImageFolderDataset(paths["train_img_dir"], classes=paths["classes_file"])
    val = ImageFolderDataset(paths["val_img_dir"], classes=str(paths["train_img_dir"]))
    assert train.class_counts == [3, 3, 3, 3] and val.class_counts == [2, 2, 2, 2]
    assert train[0]["image"].shape == (24, 24, 3)


def test_same_arguments_same_bytes_and_splits_differ(tmp_path):
    a = make_shapes_cls(tmp_path / "a", num_train=2, num_val=2, seed=5, size=16)["root"]
    b = make_shapes_cls(tmp_path / "b", num_train=2, num_val=2, seed=5, size=16)["root"]
    for rel in _files(a):
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    assert (a / "train/star/000001.png").read_bytes() != (a / "val/star/000001.png").read_bytes()


def test_colour_variant_has_twelve_classes_painted_in_their_hue():
    names = cls_class_names("shape_colour")
    assert len(names) == 12 and names[:3] == ["red_circle", "green_circle", "blue_circle"]
    rng = np.random.default_rng(0)
    image = render_crop(rng, "circle", size=32, hue=120.0)
    centre = image[12:20, 12:20].reshape(-1, 3).mean(0)  # the shape covers the crop's centre
    assert centre[1] > centre[0] and centre[1] > centre[2]  # green


def test_grey_images_are_single_channel_files(tmp_path):
    root = make_shapes_cls(tmp_path, num_train=1, num_val=0, size=16, grey=True)["root"]
    assert cv2.imread(str(root / "train/star/000001.png"), cv2.IMREAD_UNCHANGED).ndim == 2
    with pytest.raises(ValueError, match="grey images hold no colour"):
        make_shapes_cls(tmp_path, variant="shape_colour", grey=True)


def test_a_smaller_rewrite_leaves_no_stale_images(tmp_path):
    make_shapes_cls(tmp_path, num_train=3, num_val=1, size=16)
    (tmp_path / "train/circle/mine.png").write_bytes(b"x")  # not written by make_shapes_cls: kept
    make_shapes_cls(tmp_path, num_train=1, num_val=1, size=16)
    assert sorted(p.name for p in (tmp_path / "train/circle").iterdir()) == ["000001.png", "mine.png"]
