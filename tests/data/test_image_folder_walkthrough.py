"""ImageFolderDataset on data from other systems and typed by hand: macOS names (NFD, AppleDouble files,
__MACOSX), a classes folder that does not exist, CSVs with another delimiter or without a header row."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import cv2
import numpy as np
import pytest

from detkit.data.coco_file import where_read
from detkit.data.datasets.image_folder import ImageFolderDataset
from detkit.data.validate import DatasetError
from detkit.engine.preflight import check_categories, split_error

NFD = unicodedata.normalize("NFD", "café")
NFC = unicodedata.normalize("NFC", "café")


def _png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((8, 8, 3), 100, np.uint8))
    return path


def test_nfd_class_folders_match_nfc_classes(tmp_path):
    _png(tmp_path / NFD / "a.png")
    _png(tmp_path / "tea" / "a.png")
    ds = ImageFolderDataset(tmp_path, classes=[NFC, "tea"])
    assert ds.class_names == [NFC, "tea"] and ds.class_counts == [1, 1]
    assert ImageFolderDataset(tmp_path, classes=[NFD, "tea"]).class_names[0] == NFC


def test_nfd_csv_labels_match_nfc_classes(tmp_path):
    _png(tmp_path / "img" / "a.png")
    (tmp_path / "l.csv").write_text(f"file,label\na.png,{NFD}\n", encoding="utf-8")
    ds = ImageFolderDataset(tmp_path / "img", ann_file=tmp_path / "l.csv", classes=[NFC])
    assert ds.class_counts == [1]


def test_hidden_files_and_macosx_are_no_images_or_classes(tmp_path):
    _png(tmp_path / "cat" / "img_0.png")
    _png(tmp_path / "cat" / "._img_0.png")  # AppleDouble
    _png(tmp_path / "cat" / ".thumbs" / "t.png")
    _png(tmp_path / "__MACOSX" / "cat" / "._img_0.png")
    _png(tmp_path / "._stray.png")
    ds = ImageFolderDataset(tmp_path)
    assert ds.class_names == ["cat"] and [os.path.basename(f) for f in ds.files] == ["img_0.png"]


def test_missing_classes_folder_is_called_a_folder(tmp_path, monkeypatch):
    _png(tmp_path / "split" / "val" / "cat" / "a.png")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError) as e:
        ImageFolderDataset("split/val", classes="data/shapes_cls/train")
    message = str(e.value)
    assert message.startswith("classes folder data/shapes_cls/train not found") and "classes file" not in message
    assert "make-shapes data/shapes_cls --task classify" in message
    data = {"train": {"img_dir": "split/train"}, "val": {"img_dir": "split/val"}}
    line = split_error(e.value, "val", data)
    assert line.startswith("data.val.classes: classes folder data/shapes_cls/train not found")
    assert "data.val.classes=split/train" in line and "\n" not in line


def test_shapes_hint_names_the_classification_command():
    assert "make-shapes data/shapes_cls --task classify" in where_read("data/shapes_cls/train")
    assert where_read("data/shapes/train").endswith("detkit make-shapes data/shapes")
    assert "make-shapes" not in where_read("data/shapesX")


def test_val_classes_mismatch_names_train_img_dir_and_nearest(tmp_path):
    _png(tmp_path / "train" / NFC / "a.png")
    _png(tmp_path / "train" / "tea" / "a.png")
    _png(tmp_path / "val" / "cafe" / "a.png")
    _png(tmp_path / "val" / "tea" / "a.png")
    train, val = ImageFolderDataset(tmp_path / "train"), ImageFolderDataset(tmp_path / "val")
    with pytest.raises(ValueError) as e:
        check_categories(train, val)
    message = str(e.value)
    assert f"set data.val.classes to data.train's img_dir ({tmp_path / 'train'})" in message
    assert f"val class 'cafe' is nearly train's '{NFC}'" in message


@pytest.mark.parametrize("delimiter, shown", [(";", "';'"), ("\t", "tab")])
def test_csv_with_another_delimiter_says_so(tmp_path, delimiter, shown):
    _png(tmp_path / "a.png")
    (tmp_path / "l.csv").write_text(f"file{delimiter}label\na.png{delimiter}cat\n")
    with pytest.raises(DatasetError, match=f"separated by {shown}, not commas"):
        ImageFolderDataset(tmp_path, ann_file=tmp_path / "l.csv")


def test_csv_without_header_row_says_so(tmp_path):
    _png(tmp_path / "a.png")
    (tmp_path / "l.csv").write_text("a.png,cat\n")
    with pytest.raises(DatasetError, match="first row is data .*add the line 'file,label' at the top"):
        ImageFolderDataset(tmp_path, ann_file=tmp_path / "l.csv")
    (tmp_path / "l.csv").write_text("x,y\n")
    with pytest.raises(DatasetError, match="got \\['x', 'y'\\]"):
        ImageFolderDataset(tmp_path, ann_file=tmp_path / "l.csv")


def test_nfd_classes_file_matches_nfc_folders(tmp_path):
    _png(tmp_path / "img" / NFC / "a.png")
    (tmp_path / "classes.txt").write_text(f"{NFD}\n", encoding="utf-8")
    assert ImageFolderDataset(tmp_path / "img", classes=tmp_path / "classes.txt").class_counts == [1]
