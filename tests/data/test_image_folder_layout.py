"""Folders that are not a folder of class folders: a split root (ROOT/train/<class>/..., Ultralytics' classification
layout) and a YOLO detection dataset are refused by ImageFolderDataset with the folder to give instead, while
``detkit check ROOT`` checks a split root split by split."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from detkit.cli.check_dataset import main as check_main
from detkit.data.build import build_dataset
from detkit.data.datasets.image_folder import ImageFolderDataset
from detkit.data.folder_check import check_split_root
from detkit.data.folder_layout import layout_mistake, split_folders
from detkit.data.validate import DatasetError


def _images(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((16, 16, 3), 40 + i, np.uint8))


def _split_root(root: Path, splits=("train", "val"), classes=("cat", "dog"), n: int = 12) -> Path:
    for split in splits:
        for name in classes:
            _images(root / split / name, n)
    return root


def _yolo_root(root: Path) -> Path:
    _images(root / "images" / "train", 2)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "000.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    return root


def test_split_root_is_refused_at_dataset_build_naming_each_split(tmp_path):
    root = _split_root(tmp_path / "cls")
    message = (
        f"{root} holds split folders (train, val), each with class folders: give {root / 'train'} for "
        f"data.train.img_dir and {root / 'val'} for data.val.img_dir"
    )
    with pytest.raises(DatasetError) as e:
        build_dataset({"type": "ImageFolderDataset", "img_dir": str(root)})
    assert str(e.value) == message
    with pytest.raises(DatasetError, match="give .* for data.train.img_dir"):
        ImageFolderDataset(root, classes=root / "train")  # the classes do not make it a folder of class folders
    with pytest.raises(
        DatasetError,
        match=f"classes folder {re.escape(str(root))} holds split folders .* give {re.escape(str(root / 'train'))} for classes$",
    ):
        ImageFolderDataset(root / "val", classes=root)  # data.val taking the root as its classes
    assert ImageFolderDataset(root / "val", classes=root / "train").class_names == ["cat", "dog"]


def test_split_names_any_case_in_order_and_empty_splits_left_out(tmp_path):
    root = _split_root(tmp_path / "cls", splits=("Valid", "TRAIN", "test"))
    (root / "extra_empty").mkdir()
    assert split_folders(root) == []  # a folder that is no split: class folders (then 'extra_empty' is empty)
    (root / "extra_empty").rmdir()
    (root / "validation").mkdir()  # no images: not a split to name
    assert split_folders(root) == [
        ("train", str(root / "TRAIN")),
        ("val", str(root / "Valid")),
        ("test", str(root / "test")),
    ]
    message = layout_mistake(root)
    assert "holds split folders (TRAIN, Valid, test)" in message
    assert message.endswith(f"{root / 'Valid'} for data.val.img_dir and {root / 'test'} for data.test.img_dir")


def test_a_class_named_train_in_the_flat_layout_still_works(tmp_path):
    root = tmp_path / "flat"
    _images(root / "train", 3)  # a real class 'train' (images directly inside), and a class 'val'
    _images(root / "val", 2)
    _images(root / "train" / "night", 1)  # deeper images of the class are still fine
    ds = ImageFolderDataset(root)
    assert ds.class_names == ["train", "val"] and ds.class_counts == [4, 2]
    vehicles = tmp_path / "vehicles"  # classes bus and train, the train images in sub-folders
    _images(vehicles / "bus", 2)
    _images(vehicles / "train" / "day", 2)
    assert ImageFolderDataset(vehicles).class_counts == [2, 2]
    assert split_folders(root) == [] and split_folders(vehicles) == [] and layout_mistake(vehicles) is None


def test_yolo_detection_roots_are_named_with_the_command_to_check_them(tmp_path):
    root = _yolo_root(tmp_path / "ds")
    with pytest.raises(DatasetError) as e:
        ImageFolderDataset(root)
    text = str(e.value)
    assert text.startswith(f"{root} is a YOLO detection dataset (images/ and labels/ folders)")
    assert "detkit check DATA.yaml" in text and "'images'" not in text
    (root / "data.yaml").write_text("train: images/train\nnames: [a]\n")
    with pytest.raises(DatasetError, match=f"check it with detkit check {re.escape(str(root / 'data.yaml'))}$"):
        ImageFolderDataset(root)
    exported = tmp_path / "export"  # ROOT/train/images, ROOT/train/labels (e.g. a Roboflow export)
    _yolo_root(exported / "train")
    _yolo_root(exported / "valid")
    assert split_folders(exported) == []
    with pytest.raises(DatasetError, match=r"\(train, valid folders, each with images/ and labels/\)"):
        ImageFolderDataset(exported)
    flat = tmp_path / "flat"
    _images(flat / "cat", 1)
    (flat / "data.yaml").write_text("names: [cat]\n")
    with pytest.raises(DatasetError, match="it holds data.yaml.* move data.yaml out of it$"):
        ImageFolderDataset(flat)
    labels = tmp_path / "labels_class"  # classes literally named images and labels, images inside both
    _images(labels / "images", 1)
    _images(labels / "labels", 1)
    assert ImageFolderDataset(labels).class_names == ["images", "labels"]


def test_a_csv_img_dir_may_hold_split_folders(tmp_path):
    root = _split_root(tmp_path / "cls", n=1)
    (tmp_path / "labels.csv").write_text("file,label\ntrain/cat/000.png,cat\nval/dog/000.png,dog\n")
    assert len(ImageFolderDataset(root, ann_file=tmp_path / "labels.csv")) == 2


def test_check_split_root_reports_each_split_against_the_training_classes(tmp_path):
    root = _split_root(tmp_path / "cls")
    _images(root / "val" / "wolf", 12)  # a class the training split lacks: training would refuse it
    train, val = check_split_root(root)
    assert train.source == f"{root}, split train (images in {root / 'train'})" and not train.problems
    assert [p.kind for p in val.errors] == ["unknown_class"] and val.class_counts == {"cat": 12, "dog": 12}
    assert "the training split's class folders (2" in val.format()
    (only,) = check_split_root(root, "VAL", read_images=False)
    assert only.source.startswith(f"{root}, split val")
    with pytest.raises(DatasetError, match="has no split folder 'test'; its split folders: train, val"):
        check_split_root(root, "test")


def test_check_tool_on_a_split_root_and_on_a_yolo_root(tmp_path, capsys):
    root = _split_root(tmp_path / "cls")
    assert check_main([str(root)]) == 0
    out = capsys.readouterr().out
    assert out.count("Summary of") == 2 and "split train" in out and "split val" in out
    assert "2 classes" in out and "train   " not in out  # not the two classes 'train' and 'val'
    assert check_main([str(root), "--split", "val", "--no-images"]) == 0
    assert capsys.readouterr().out.count("Summary of") == 1
    _images(root / "val" / "wolf", 12)
    assert check_main([str(root), "--no-images"]) == 1  # val against the training classes
    for args, message in (
        ([str(_yolo_root(tmp_path / "ds"))], "is a YOLO detection dataset (images/ and labels/ folders)"),
        ([str(root / "val"), "--classes", str(root)], f"give {root / 'train'} for classes"),
        ([str(root / "train"), "--split", "val"], "--split applies to"),
    ):
        with pytest.raises(SystemExit) as e:
            check_main(args)
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_segmentation_and_coco_folders_are_not_class_folders(tmp_path, capsys):
    """A semantic segmentation folder (img/ + ann/, VOC's JPEGImages/ + SegmentationClass/, MMSeg's img_dir/train
    + ann_dir/train) and a COCO root trained / checked as two or three "classes" (img, ann; sem, train, val)."""
    seg = tmp_path / "seg"
    _images(seg / "img", 3)
    _maps(seg / "ann", 3)  # one-channel label maps named like the images
    with pytest.raises(DatasetError, match=r"seg is a semantic segmentation dataset \(img/ with label maps .* ann/\)"):
        ImageFolderDataset(seg)
    with pytest.raises(SystemExit) as e:
        check_main([str(seg)])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "SegFolderDataset" in err and len(err.splitlines()) == 1
    voc = tmp_path / "voc"
    _images(voc / "JPEGImages" / "train", 2)
    _maps(voc / "SegmentationClass" / "train", 2)
    assert "semantic segmentation" in layout_mistake(voc)
    coco = tmp_path / "coco"
    _images(coco / "train", 2)
    (coco / "train.json").write_text('{"images": [], "annotations": [], "categories": []}')
    assert layout_mistake(coco).endswith(f"detkit check {coco / 'train.json'} {coco / 'train'}")
    roboflow = tmp_path / "rf"
    _images(roboflow / "valid", 2)
    (roboflow / "valid" / "_annotations.coco.json").write_text('{"info": {}, "images": [], "annotations": []}')
    assert "valid/ holds a COCO annotation file beside its images" in layout_mistake(roboflow)
    # still class folders: colour images in folders of those names, unrelated stems, a json that is not COCO's
    cls = tmp_path / "cls"
    _images(cls / "images", 2)
    _images(cls / "masks", 2)  # the same stems, three channels
    _maps(cls / "ann", 2, prefix="x")  # one channel, no stem in common with images/
    (cls / "meta.json").write_text('{"author": "me"}')
    (cls / "labels.json").write_text('{"categories": ["ann", "images", "masks"]}')  # names "categories", not COCO
    assert layout_mistake(cls) is None
    assert ImageFolderDataset(cls).class_names == ["ann", "images", "masks"]


def _maps(folder: Path, n: int, prefix: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"{prefix}{i:03d}.png"), np.full((16, 16), i, np.uint8))
