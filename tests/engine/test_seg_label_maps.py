"""check_label_maps (training start, build_data): the label maps of a SegFolderDataset read before training:
values past the classes refused with the key and the file, 0/255 binary masks a warning with the fix."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
from PIL import Image

from detkit.data.datasets.seg_folder import SegFolderDataset
from detkit.engine import PreflightError
from detkit.engine.preflight_data import check_label_maps


def _split(root, n=3, fg=255):
    """n 16x20 images with binary masks: 0 background, ``fg`` on the top half."""
    (root / "img").mkdir(parents=True)
    (root / "ann").mkdir()
    for i in range(n):
        cv2.imwrite(str(root / "img" / f"im{i}.png"), np.full((16, 20, 3), 30 * i, np.uint8))
        sem = np.zeros((16, 20), np.uint8)
        sem[:8] = fg
        Image.fromarray(sem).save(root / "ann" / f"im{i}.png")
    return {"type": "SegFolderDataset", "img_dir": str(root / "img"), "mask_dir": str(root / "ann"), "pipeline": []}


def _ds(node, **kw):
    return SegFolderDataset(node["img_dir"], node["mask_dir"], classes=["background", "shape"], **kw)


def test_binary_0_255_masks_warn_with_the_fix(tmp_path, caplog):
    train, val = _ds(_split(tmp_path / "train")), _ds(_split(tmp_path / "val"))
    with caplog.at_level(logging.WARNING, logger="detkit"):
        check_label_maps(train, val)
    assert [r.getMessage() for r in caplog.records] == [
        "class 'shape' has no pixel in data.train's label maps but 255 (ignore) covers 50.0% of them: 0/255 "
        "binary masks? map 255 to the class, e.g. label_map: {255: 1} on data.train and data.val "
        "(docs/segmentation.md)"
    ]
    caplog.clear()
    fixed = _ds(_split(tmp_path / "fixed"), label_map={255: 1})  # the fix: 255 read as class 1
    assert fixed[0]["sem_seg"].max() == 1
    with caplog.at_level(logging.WARNING, logger="detkit"):
        check_label_maps(fixed, _ds(_split(tmp_path / "fixed_val"), label_map={255: 1}))
    assert not caplog.records


def test_a_bad_value_in_a_val_map_is_refused_before_training(tmp_path):
    train, val = _split(tmp_path / "train", fg=1), _split(tmp_path / "val", fg=1)
    Image.fromarray(np.full((16, 20), 7, np.uint8)).save(tmp_path / "val" / "ann" / "im2.png")
    with pytest.raises(PreflightError) as e:
        check_label_maps(_ds(train), _ds(val))
    assert str(e.value) == (
        f"data.val: label map {tmp_path / 'val' / 'ann' / 'im2.png'} has value(s) [7] but data.val.classes gives 2 "
        "classes (values 0..1, 255 ignored): fix the map, the classes, or map the values with data.val.label_map "
        "(e.g. label_map: {7: 255} to ignore them)"
    )
    check_label_maps(_ds(train), _ds(val, on_error="skip"))  # skipped by the dataset when read: not refused
    with pytest.raises(PreflightError, match=r"im2.png has value"):  # data.val is read whole, whatever max_train
        check_label_maps(_ds(train), _ds(val), max_train=0)
    with pytest.raises(PreflightError, match=r"^data.train.dataset: label map .*im2.png has value\(s\) \[7\]"):
        check_label_maps(_Wrapper(_ds(val)), None)


class _Wrapper:
    """A dataset wrapper (as MixDataset / TiledDataset): the maps read are those of its ``dataset``."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)


def test_build_data_reads_the_label_maps(tmp_path):
    """The wiring: build_data refuses a bad value in the last data.val map, before any training."""
    from detkit.engine.parts import build_data

    train, val = _split(tmp_path / "train", fg=1), _split(tmp_path / "val", fg=1)
    Image.fromarray(np.full((16, 20), 5, np.uint8)).save(tmp_path / "val" / "ann" / "im2.png")
    classes = {"classes": ["background", "shape"]}
    data = {"batch_size": 2, "num_workers": 0, "train": {**train, **classes}, "val": {**val, **classes}}
    with pytest.raises(PreflightError, match=r"^data.val: label map .*im2.png has value\(s\) \[5\]"):
        build_data({"data": data, "seed": 0, "model": {"type": "Segmentor"}})


def test_a_val_map_of_another_size_is_refused_before_training(tmp_path):
    """It was found after a whole epoch ("evaluation after epoch 1 failed"): the scan compares each map it reads with
    its image's header, and refuses with the dataset's own message."""
    train, val = _split(tmp_path / "train", fg=1), _split(tmp_path / "val", fg=1)
    Image.fromarray(np.zeros((12, 20), np.uint8)).save(tmp_path / "val" / "ann" / "im1.png")
    with pytest.raises(PreflightError) as e:
        check_label_maps(_ds(train), _ds(val))
    assert str(e.value) == (
        f"data.val: label map {tmp_path / 'val' / 'ann' / 'im1.png'} is 20x12 but image "
        f"{tmp_path / 'val' / 'img' / 'im1.png'} is 20x16; they must match"
    )
    check_label_maps(_ds(train), _ds(val, on_error="skip"))  # skipped by the dataset when read: not refused
    with pytest.raises(PreflightError, match=r"^data.train: label map .*im1.png is 20x12"):
        check_label_maps(_ds(val), None)


def test_the_size_is_the_image_as_read_turned_by_its_exif_orientation(tmp_path):
    """The image's header size turned by its EXIF orientation, as reading turns it: a map drawn on the upright
    image fits, one drawn on the stored pixels is refused naming the orientation."""
    val = _split(tmp_path / "val", n=1, fg=1)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 20x16 (w x h), read 16x20
    Image.fromarray(np.full((16, 20, 3), 90, np.uint8)).save(tmp_path / "val" / "img" / "im0.jpg", exif=exif)
    (tmp_path / "val" / "img" / "im0.png").unlink()
    upright = np.zeros((20, 16), np.uint8)
    Image.fromarray(upright).save(tmp_path / "val" / "ann" / "im0.png")
    check_label_maps(None, _ds(val))
    Image.fromarray(np.zeros((16, 20), np.uint8)).save(tmp_path / "val" / "ann" / "im0.png")  # the stored frame
    with pytest.raises(PreflightError, match=r"^data.val: label map .* is 20x16 but image .*im0.jpg is 16x20 as "
                       r"read: its EXIF orientation 6"):  # fmt: skip
        check_label_maps(None, _ds(val))
