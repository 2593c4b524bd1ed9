"""A label map in the stored frame of an EXIF-rotated image: the size mismatch names the EXIF orientation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from detkit.data.datasets.seg_folder import SegFolderDataset
from detkit.data.seg_folder_check import check_seg_folder
from detkit.data.validate import DatasetError


def _pair(root, orientation: int | None, label_size=(40, 30), suffix=".jpg"):
    """An image stored 40x30 (width x height) with the EXIF ``orientation`` and a label map of ``label_size``."""
    (root / "img").mkdir(parents=True)
    (root / "ann").mkdir()
    image = Image.fromarray(np.full((30, 40, 3), 90, np.uint8))
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(root / "img" / f"a{suffix}", exif=exif)
    Image.fromarray(np.zeros(label_size[::-1], np.uint8)).save(root / "ann" / "a.png")
    return SegFolderDataset(root / "img", root / "ann", classes=["background", "fg"])


@pytest.mark.parametrize("orientation", [6, 8, 5, 7])
def test_a_turned_jpeg_names_its_exif_orientation_and_the_fix(tmp_path, orientation):
    ds = _pair(tmp_path, orientation)
    with pytest.raises(DatasetError) as info:
        ds[0]
    msg = str(info.value)
    assert "a.jpg" in msg and "a.png" in msg and "30x40" in msg and "40x30" in msg
    assert f"EXIF orientation {orientation}" in msg
    assert "exiftool -Orientation=" in msg and "label map the same way" in msg


def test_an_unturned_mismatch_says_nothing_of_exif(tmp_path):
    ds = _pair(tmp_path, None, label_size=(30, 40))  # swapped sizes, but no EXIF tag: a plain mismatch
    with pytest.raises(DatasetError, match="they must match") as info:
        ds[0]
    assert "EXIF" not in str(info.value)


def test_a_turn_that_does_not_explain_the_size_says_nothing_of_exif(tmp_path):
    ds = _pair(tmp_path, 6, label_size=(20, 20))
    with pytest.raises(DatasetError) as info:
        ds[0]
    assert "EXIF" not in str(info.value)


def test_orientations_that_keep_the_size_read_as_before(tmp_path):
    ds = _pair(tmp_path, 3)  # 180 degrees: the size is unchanged, the pair matches
    assert ds[0]["sem_seg"].shape == (30, 40)


@pytest.mark.parametrize("read_images", [True, False])
def test_detkit_check_names_the_exif_orientation(tmp_path, read_images):
    ds = _pair(tmp_path, 6)
    report = check_seg_folder(ds, "data.train of x.yaml", read_images=read_images)
    (problem,) = report.errors  # from the headers too: the size as training reads the image
    assert problem.kind == "size_mismatch" and "EXIF orientation 6" in problem.message
