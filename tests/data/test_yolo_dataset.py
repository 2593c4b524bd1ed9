"""YOLODataset: an Ultralytics data.yaml read as it is gives CocoDataset's samples; each bad input a clear error."""

from __future__ import annotations

import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from detkit.config_check import ConfigProblems, check_part
from detkit.data.converters import convert_coco_to_yolo
from detkit.data.datasets.coco import CocoDataset
from detkit.data.datasets.yolo import YOLODataset, label_path
from detkit.data.validate import DatasetError
from detkit.registry import DATASETS


def _yolo_copy(coco_files, root: Path, segments: bool) -> Path:
    """The ``coco_files`` data in Ultralytics' layout: ``root/images/train``, ``root/labels/train``, ``data.yaml``."""
    convert_coco_to_yolo(coco_files.ann_file, coco_files.img_dir, root / "converted", segments=segments)
    shutil.copytree(coco_files.img_dir, root / "images" / "train")
    shutil.copytree(root / "converted" / "labels", root / "labels" / "train")
    names = (root / "converted" / "classes.txt").read_text().split()
    shutil.rmtree(root / "converted")
    data = {"path": ".", "train": "images/train", "val": "images/train", "names": dict(enumerate(names))}
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root / "data.yaml"


@pytest.fixture
def yolo(coco_files, tmp_path):
    return _yolo_copy(coco_files, tmp_path / "yolo", segments=False)


def _by_file(ds) -> dict[str, int]:
    return {ds.coco.imgs[i]["file_name"]: k for k, i in enumerate(ds.img_ids)}


def _ds(yaml_path, **kw) -> YOLODataset:
    return YOLODataset(data_yaml=str(yaml_path), split="train", **kw)


def test_same_samples_as_the_coco_data(coco_files, yolo):
    ds, ref = _ds(yolo), CocoDataset(coco_files.ann_file, coco_files.img_dir)
    assert ds.class_names == ref.class_names == ["ant", "moose", "zebra"]
    assert ds.label_to_cat_id == {0: 1, 1: 2, 2: 3}
    ours, theirs = _by_file(ds), _by_file(ref)
    assert sorted(ours) == sorted(theirs) == ["a.png", "c.png", "sub/b.png"]
    for name, k in ours.items():
        s, t = ds[k], ref[theirs[name]]
        assert set(s) == set(t)
        np.testing.assert_array_equal(s["image"], t["image"])
        np.testing.assert_allclose(s["boxes"], t["boxes"], atol=1e-3)
        np.testing.assert_array_equal(s["labels"], t["labels"])
        assert s["orig_size"] == t["orig_size"]
    np.testing.assert_allclose(ds.aspect_ratios[ours["sub/b.png"]], 60 / 80)
    assert len(ds.coco.getAnnIds()) == 3  # the crowd region is not in YOLO labels


def test_polygons_give_masks(coco_files, tmp_path):
    ds = _ds(_yolo_copy(coco_files, tmp_path / "seg", segments=True), with_masks=True)
    ref = CocoDataset(coco_files.ann_file, coco_files.img_dir, with_masks=True)
    s, t = ds[_by_file(ds)["a.png"]], ref[_by_file(ref)["a.png"]]
    assert s["masks"].shape == t["masks"].shape == (2, 48, 64)
    inter = (s["masks"] & t["masks"]).sum((1, 2))
    union = (s["masks"] | t["masks"]).sum((1, 2))
    assert (inter / union > 0.8).all()


def test_built_from_a_config_spec_and_checked(yolo):
    spec = {"type": "YOLODataset", "data_yaml": str(yolo), "split": "val", "cache": "ram", "on_error": "skip"}
    problems = ConfigProblems()
    check_part(problems, DATASETS, spec, ("data", "train"))
    assert problems.messages == []
    check_part(problems, DATASETS, {**spec, "cache": True, "with_mask": True}, ("data", "train"))
    text = " ".join(problems.messages)
    assert "data.train.cache must be one of: 'ram', 'disk', false" in text
    assert "unknown key 'data.train.with_mask' (nearest valid: 'data.train.with_masks'" in text
    ds = DATASETS.build(spec)
    assert isinstance(ds, YOLODataset) and len(ds) == 3 and ds.image_cache.mode == "ram"


def test_img_dir_label_dir_and_classes(coco_files, yolo):
    root = yolo.parent
    ds = YOLODataset(img_dir=str(root / "images" / "train"), classes=["ant", "moose", "zebra"])
    assert len(ds) == 3 and ds.num_classes == 3
    moved = root / "my_labels"
    shutil.move(root / "labels" / "train", moved)
    ds = YOLODataset(img_dir=str(root / "images" / "train"), label_dir=str(moved), classes=["ant", "moose", "zebra"])
    assert len(ds.coco.getAnnIds()) == 3
    with pytest.raises(DatasetError, match=r"label folder .*labels/train .*not found.*give label_dir"):
        YOLODataset(img_dir=str(root / "images" / "train"), classes=["a", "b", "c"])


def test_label_path_rule():
    assert label_path(Path("/d/images/train/a.jpg")) == Path("/d/labels/train/a.txt")
    assert label_path(Path("/images/d/train/images/x/a.png")) == Path("/images/d/train/labels/x/a.txt")
    assert label_path(Path("/d/pics/a.jpg")) == Path("/d/pics/a.txt")


def test_negatives_and_orphan_labels(yolo):
    labels = yolo.parent / "labels" / "train"
    (labels / "a.txt").unlink()
    (labels / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.warns(UserWarning) as caught:
        ds = _ds(yolo)
    text = "\n".join(str(w.message) for w in caught)
    assert re.search(r"1 label file\(s\) have no image: .*ghost\.txt", text)
    assert "1 of 3 images have no label file" in text  # a.png: counted as background
    s = ds[_by_file(ds)["a.png"]]
    assert s["boxes"].shape == (0, 4) and s["labels"].shape == (0,)


def _write_line(yolo, line: str) -> None:
    (yolo.parent / "labels" / "train" / "sub" / "b.txt").write_text("0 0.5 0.5 0.2 0.2\n" + line + "\n")


@pytest.mark.parametrize(
    "line,msg",
    [
        ("3 0.5 0.5 0.1 0.1", r"class index 3 is not an integer in 0\.\.2"),
        ("0 0.5 0.5 1.7 0.1", "normalised to 0..1"),
        ("0 0.5 -0.2 0.1 0.1", "normalised to 0..1"),
        ("0 0.5 0.5 0.1", "got 3 numbers"),
        ("cat 0.5 0.5 0.1 0.1", "non-numeric"),
    ],
)
def test_bad_lines_name_file_and_line(yolo, line, msg):
    _write_line(yolo, line)
    with pytest.raises(DatasetError, match=rf"(?s)sub/b\.txt line 2: .*{msg}.*on_error: skip"):
        _ds(yolo)


def test_skip_leaves_bad_lines_out_with_one_warning(yolo):
    _write_line(yolo, "7 0.5 0.5 0.1 0.1")
    match = r"dropped 1 image\(s\) \(bad_annotation: 1\) and 1 annotation\(s\) \(bad_label: 1\)"
    with pytest.warns(UserWarning, match=match):
        ds = _ds(yolo, on_error="skip")
    # the image goes with its bad line (as Ultralytics drops it): kept, its object would be learnt as background
    assert len(ds) == 2 and ds.skipped.counts["annotation:bad_label"] == 1 and "sub/b.png" not in _by_file(ds)
    assert ds.skipped.counts["image:bad_annotation"] == 1


def test_unreadable_image_is_left_out_under_skip(yolo):
    (yolo.parent / "images" / "train" / "c.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=r"c\.png: cannot read image"):
        _ds(yolo)
    with pytest.warns(UserWarning, match=r"dropped 1 image\(s\) \(bad_image: 1\)"):
        assert len(_ds(yolo, on_error="skip")) == 2


def test_image_link_out_of_the_folder_is_refused(yolo, tmp_path):
    outside = tmp_path / "outside.png"
    shutil.copy(yolo.parent / "images" / "train" / "a.png", outside)
    os.symlink(outside, yolo.parent / "images" / "train" / "link.png")
    with pytest.raises(DatasetError, match=r"link\.png.*points outside img_dir"):
        _ds(yolo)


@pytest.mark.parametrize(
    "change,msg",
    [
        (lambda d: d.update(names={0: "a", 2: "b"}), r"keys of 'names' must be the class indices 0\.\.1"),
        (lambda d: d.update(nc=5), "nc is 5 but 'names' lists 3 classes"),
        (lambda d: d.pop("train"), r"no 'train' split \(it has val\)"),
        (
            lambda d: d.update(train="images/nothere"),
            r"train: images/nothere not found: looked for .*yolo/images/nothere",
        ),
        (lambda d: d.update(train="train.txt"), r"train\.txt not found"),
        (lambda d: d.update(train="data.yaml"), r"is a file but no \.txt list of images"),
        (lambda d: d.update(names={"0": "a", "x": "b", "2": "c"}), r"indices 0\.\.2, got \['0', '2', 'x'\]"),
        (lambda d: d.update(names="abc"), r"'names' must be a list or a dict, got str"),
        (lambda d: d.update(names=["a", "a", "b"]), r"class names \['a'\] appear twice"),
    ],
)
def test_bad_data_yaml(yolo, change, msg):
    data = yaml.safe_load(yolo.read_text())
    change(data)
    yolo.write_text(yaml.safe_dump(data))
    with pytest.raises(DatasetError, match=msg):
        _ds(yolo)


def test_path_key_and_missing_yaml(yolo, tmp_path):
    data = yaml.safe_load(yolo.read_text())
    elsewhere = tmp_path / "cfg" / "data.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text(yaml.safe_dump({**data, "path": "../yolo"}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(_ds(elsewhere)) == 3
    with pytest.raises(DatasetError, match="data_yaml .*nope.yaml not found"):
        _ds(tmp_path / "nope.yaml")
    with pytest.raises(DatasetError, match=r"give either data_yaml \(with split\) or img_dir \(with classes\)"):
        YOLODataset()
