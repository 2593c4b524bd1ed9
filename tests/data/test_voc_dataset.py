"""VOCDataset: a VOC folder written by coco2voc gives CocoDataset's samples; difficult = crowd; bad input errors."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from detkit.data.converters import convert_coco_to_voc
from detkit.data.datasets.coco import CocoDataset
from detkit.data.datasets.voc import VOCDataset
from detkit.data.validate import DatasetError
from detkit.registry import DATASETS

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "voc" / "Annotations"


@pytest.fixture
def voc(coco_files, tmp_path) -> Path:
    """The ``coco_files`` data as a VOC folder (split ``ann``: the json's stem); its crowd region is difficult."""
    root = tmp_path / "VOC"
    convert_coco_to_voc(coco_files.ann_file, coco_files.img_dir, root)
    return root


def _ds(root, **kw) -> VOCDataset:
    return VOCDataset(root=str(root), split="ann", classes=str(root / "classes.txt"), **kw)


def test_same_samples_as_the_coco_data(coco_files, voc):
    ds, ref = _ds(voc), CocoDataset(coco_files.ann_file, coco_files.img_dir)
    assert ds.class_names == ref.class_names == ["ant", "moose", "zebra"]
    assert [ds.coco.imgs[i]["file_name"] for i in ds.img_ids] == ["a.png", "sub_b.png", "c.png"]
    for k in range(len(ref)):
        s, t = ds[k], ref[k]
        assert set(s) == set(t)
        np.testing.assert_array_equal(s["image"], t["image"])
        np.testing.assert_array_equal(s["boxes"], t["boxes"])
        np.testing.assert_array_equal(s["labels"], t["labels"])
        a, b = ds.get_ann_info(k), ref.get_ann_info(k)
        np.testing.assert_array_equal(a["crowd_boxes"], b["crowd_boxes"])  # difficult <-> crowd
    assert ds.get_ann_info(1)["crowd_boxes"].shape == (1, 4)


def test_keep_difficult_and_default_classes(voc):
    ds = VOCDataset(root=str(voc), split="ann", keep_difficult=True)
    assert ds.class_names == ["ant", "moose", "zebra"]  # the XML names, sorted
    assert ds[1]["labels"].tolist() == [1, 0]  # the difficult 'ant' is an ordinary box


def test_real_voc_files_and_no_split(tmp_path):
    """The VOC2007/2012 fixture XML files (difficult objects, person-layout parts) with split: null."""
    root = tmp_path / "VOC2012"
    shutil.copytree(FIXTURE, root / "Annotations")
    (root / "JPEGImages").mkdir()
    for xml in sorted((root / "Annotations").glob("*.xml")):
        r = ET.parse(xml).getroot()
        w, h = int(r.find("size/width").text), int(r.find("size/height").text)
        cv2.imwrite(str(root / "JPEGImages" / r.find("filename").text), np.zeros((h, w, 3), np.uint8))
    ds = DATASETS.build({"type": "VOCDataset", "root": str(root), "split": None})
    assert ds.class_names == ["chair", "dog", "person"] and len(ds) == 3
    person = ds.get_ann_info([ds.coco.imgs[i]["file_name"] for i in ds.img_ids].index("2007_000027.jpg"))
    np.testing.assert_array_equal(person["boxes"], [[173, 100, 349, 351]])  # its <part> boxes are not objects
    n_crowd = sum(len(ds.get_ann_info(k)["crowd_boxes"]) for k in range(len(ds)))
    assert n_crowd == 2  # the two difficult objects


def test_missing_split_file_names_the_splits(voc):
    with pytest.raises(DatasetError, match=r"VOC split file .*val\.txt not found \(split files there: ann\)"):
        VOCDataset(root=str(voc), split="val")
    with pytest.raises(DatasetError, match="has no JPEGImages/ folder"):
        shutil.rmtree(voc / "JPEGImages")
        VOCDataset(root=str(voc), split="ann")


def _break(voc, what: str) -> None:
    ids = voc / "ImageSets" / "Main" / "ann.txt"
    xml = voc / "Annotations" / "sub_b.xml"
    if what == "missing_xml":
        ids.write_text(ids.read_text() + "ghost\n")
    elif what == "escape":
        ids.write_text(ids.read_text() + "../../outside\n")
    elif what == "bad_xml":
        xml.write_text("<annotation><object>")
    elif what == "missing_image":
        (voc / "JPEGImages" / "sub_b.png").unlink()
    else:
        text = xml.read_text()
        xml.write_text(
            text.replace("<name>moose</name>", "<name>elk</name>")
            if what == "unknown_class"
            else text.replace("<xmax>50</xmax>", "<xmax>abc</xmax>")
        )


@pytest.mark.parametrize(
    "what,msg,kept,anns",  # kept images, non-crowd boxes (3 images, 3 boxes unbroken; a bad object takes its image)
    [
        ("missing_xml", r"ann\.txt: id 'ghost' has no XML file .*ghost\.xml", 3, 3),
        ("escape", r"id '\.\./\.\./outside'.*points outside img_dir", 3, 3),
        ("bad_xml", r"sub_b\.xml: invalid XML", 2, 2),
        ("missing_image", r"sub_b\.xml: no image in .*JPEGImages \(sub_b\.xml \(sub_b\.png\)\)", 2, 2),
        ("unknown_class", r"sub_b\.xml: object class 'elk' is not in the class list", 2, 2),
        ("bad_box", r"sub_b\.xml object #0: non-numeric value in <bndbox>", 2, 2),
    ],
)
def test_bad_input_named_then_skipped(voc, what, msg, kept, anns):
    _break(voc, what)
    with pytest.raises(DatasetError, match=rf"(?s){msg}.*on_error: skip"):
        _ds(voc)
    with pytest.warns(UserWarning, match="on_error='skip' dropped"):
        ds = _ds(voc, on_error="skip")
    assert len(ds) == kept
    assert sum(len(ds.get_ann_info(k)["boxes"]) for k in range(len(ds))) == anns
    assert ds.skipped.total() >= 1


@pytest.mark.parametrize("fmt", ["voc", "yolo"])
def test_coco_evaluation_on_the_records(coco_files, voc, tmp_path, fmt):
    """The ground truth as predictions scores AP 1; a detection on a difficult (crowd) region costs nothing."""
    import torch

    from detkit.data.converters import convert_coco_to_yolo
    from detkit.data.datasets.yolo import YOLODataset
    from detkit.evaluation.coco import CocoEvaluator

    if fmt == "voc":
        ds = _ds(voc)
    else:
        convert_coco_to_yolo(coco_files.ann_file, coco_files.img_dir, tmp_path / "y" / "labels")
        shutil.move(tmp_path / "y" / "labels" / "labels", tmp_path / "y" / "lab")
        ds = YOLODataset(
            img_dir=str(coco_files.img_dir), label_dir=str(tmp_path / "y" / "lab"), classes=["a", "b", "c"]
        )
    evaluator = CocoEvaluator(dataset=ds)
    for k in range(len(ds)):
        info = ds.get_ann_info(k)
        boxes = np.concatenate([info["boxes"], info["crowd_boxes"]])
        labels = np.concatenate([info["labels"], np.zeros(len(info["crowd_boxes"]), np.int64)])
        pred = {"boxes": torch.as_tensor(boxes), "scores": torch.ones(len(boxes)), "labels": torch.as_tensor(labels)}
        evaluator.process({"image_ids": [info["image_id"]]}, [pred])
    assert evaluator.compute()["bbox/AP"] == pytest.approx(1.0)


def test_a_classes_file_with_blank_lines_is_read_by_name_but_a_repeat_is_refused(voc):
    """VOC objects are matched to classes by name: a blank line shifts nothing, so it is skipped."""
    classes = voc / "classes.txt"
    ref = _ds(voc)
    classes.write_text("ant\nmoose\n\nzebra\n")
    ds = _ds(voc)
    assert ds.class_names == ref.class_names == ["ant", "moose", "zebra"]
    assert [ds[k]["labels"].tolist() for k in range(len(ds))] == [ref[k]["labels"].tolist() for k in range(len(ref))]
    classes.write_text("ant\n\nmoose\nant\nzebra\n")
    with pytest.raises(DatasetError, match=rf"^classes file {classes} line 4 repeats the class name 'ant' \(line 1\)"):
        _ds(voc)
