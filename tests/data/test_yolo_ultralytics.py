"""YOLODataset reads what Ultralytics' check_det_dataset and label loader accept: Roboflow paths, quoted name keys,
.txt image lists, validation:, nc without names, duplicated and zero-size label lines, box lines among polygons."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from detkit.data.build import build_dataset
from detkit.data.datasets.yolo import YOLODataset
from detkit.data.format_check import check_yolo
from detkit.data.validate import DatasetError

NAMES = ["circle", "square"]
LABELS = {"a": "0 0.5 0.5 0.5 0.5\n", "b": "1 0.25 0.25 0.25 0.25\n0 0.75 0.75 0.2 0.2\n", "c": ""}
POLY = "0 0.1 0.1 0.6 0.1 0.6 0.6 0.1 0.6\n"


def _write(root: Path, images: str = "images/train", labels: str = "labels/train", **yaml_keys) -> Path:
    """Three 64x48 images (a, b, c) in ``root/images``, their labels in ``root/labels``, and ``root/data.yaml``."""
    (root / images).mkdir(parents=True)
    (root / labels).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for stem, text in LABELS.items():
        assert cv2.imwrite(str(root / images / f"{stem}.png"), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
        (root / labels / f"{stem}.txt").write_text(text)
    data = {"path": ".", "train": images, "val": images, "names": NAMES, **yaml_keys}
    (root / "data.yaml").write_text(yaml.safe_dump({k: v for k, v in data.items() if v is not None}))
    return root / "data.yaml"


@pytest.fixture
def yolo(tmp_path) -> Path:
    return _write(tmp_path / "ds")


def _edit(data_yaml: Path, **changes) -> Path:
    data = yaml.safe_load(data_yaml.read_text())
    data.update(changes)
    data_yaml.write_text(yaml.safe_dump({k: v for k, v in data.items() if v is not None}))
    return data_yaml


def _boxes(ds: YOLODataset) -> int:
    return len(ds.coco.getAnnIds())


# ----------------------------------------------------------------------------- 1: under a wrapper


def test_under_a_mix_dataset(yolo):
    inner = {"type": "YOLODataset", "data_yaml": str(yolo), "split": "train"}
    ds = build_dataset({"type": "MixDataset", "dataset": inner, "size": 64, "ann_file": None, "on_error": "skip"})
    assert len(ds) == 3 and ds.dataset.on_error == "skip" and ds.class_names == NAMES
    for key, value in (("ann_file", "data/shapes/train.json"), ("img_dir", "data/shapes/train")):
        with pytest.raises(ValueError, match=rf"MixDataset: {key}=.* and dataset\.data_yaml=.* are both given.*null"):
            build_dataset({"type": "MixDataset", "dataset": inner, key: value})


def test_the_reported_config_override(yolo):
    from detkit.config import load_config

    config = Path(__file__).parents[2] / "configs" / "yolo" / "yolo_n_shapes.yaml"
    sets = ["data.train.img_dir=null", "data.train.dataset.type=YOLODataset"]
    sets += [f"data.train.dataset.data_yaml={yolo}", "data.train.dataset.split=train"]
    with pytest.raises(ValueError, match=r"ann_file='data/shapes/train\.json' and dataset\.data_yaml=.*data\.train"):
        build_dataset(load_config(config, sets)["data"]["train"])
    assert len(build_dataset(load_config(config, [*sets, "data.train.ann_file=null"])["data"]["train"])) == 3


def test_wrapper_keys_the_inner_type_does_not_take(tmp_path):
    from detkit.data.datasets.inner import inner_dataset_config

    with pytest.raises(ValueError, match="its dataset VOCDataset takes no ann_file"):
        inner_dataset_config({"type": "VOCDataset", "root": str(tmp_path)}, "MixDataset", ann_file="a.json")
    spec = inner_dataset_config({"type": "CocoDataset"}, "MixDataset", ann_file="a.json", img_dir="im")
    assert spec == {"type": "CocoDataset", "ann_file": "a.json", "img_dir": "im"}


# ----------------------------------------------------------------------------- 2: split paths


def test_roboflow_paths(tmp_path):
    """Roboflow: the yaml in the dataset root says ``train: ../train/images``; Ultralytics retries it as ``train/``."""
    yolo = _write(tmp_path / "rf", "train/images", "train/labels", path=None)
    _edit(yolo, train="../train/images", val="../valid/images")
    assert len(YOLODataset(data_yaml=str(yolo), split="train")) == 3
    with pytest.raises(DatasetError, match=r"(?s)val: \.\./valid/images not found: looked for .*valid/images, then "):
        YOLODataset(data_yaml=str(yolo), split="val")


def test_not_found_says_how_path_was_resolved(yolo, tmp_path):
    moved = tmp_path / "cfg" / "data.yaml"
    moved.parent.mkdir()
    moved.write_text(yolo.read_text().replace("path: .", "path: ../elsewhere"))
    with pytest.raises(DatasetError, match=r"path: '\.\./elsewhere' is relative to the yaml's folder, so the root is"):
        YOLODataset(data_yaml=str(moved))


# ----------------------------------------------------------------------------- 3 and 5: names, nc, validation


def test_quoted_name_keys(yolo):
    _edit(yolo, names={"1": "square", "0": "circle"})
    assert YOLODataset(data_yaml=str(yolo)).class_names == NAMES
    _edit(yolo, names={"0": "circle", "one": "square"})
    with pytest.raises(DatasetError, match=r"keys of 'names' must be the class indices 0\.\.1, got \['0', 'one'\]"):
        YOLODataset(data_yaml=str(yolo))


def test_nc_without_names(yolo):
    _edit(yolo, names=None, nc="2")
    with pytest.warns(UserWarning, match=r"no 'names': the 2 classes \(nc: 2\) are named class_0 \.\. class_1"):
        ds = YOLODataset(data_yaml=str(yolo))
    assert ds.class_names == ["class_0", "class_1"] and _boxes(ds) == 3
    for nc, msg in ((1.5, "nc must be a positive integer"), (None, r"no 'names' \(nor 'nc'\)")):
        _edit(yolo, nc=nc)
        with pytest.raises(DatasetError, match=msg):
            YOLODataset(data_yaml=str(yolo))


def test_validation_key_is_val(yolo):
    data = yaml.safe_load(yolo.read_text())
    data["validation"] = data.pop("val")
    yolo.write_text(yaml.safe_dump(data))
    with pytest.warns(UserWarning, match="'validation:' read as the val split"):
        assert len(YOLODataset(data_yaml=str(yolo), split="val")) == 3
    with pytest.raises(DatasetError, match=r"no 'test' split \(it has train, val\)"):
        YOLODataset(data_yaml=str(yolo), split="test")
    from detkit.data.format_check import yolo_splits

    assert yolo_splits(yolo) == ["train", "val"]  # detkit check DATA.yaml checks the validation: split too


# ----------------------------------------------------------------------------- 4: .txt lists of images


def test_txt_image_list(yolo):
    root = yolo.parent
    lines = ["./images/train/a.png", str(root / "images" / "train" / "b.png"), "images/train/c.png", ""]
    (root / "train.txt").write_text("\n".join(lines))
    ds = YOLODataset(data_yaml=str(_edit(yolo, train="train.txt")))
    assert sorted(ds.coco.imgs[i]["file_name"] for i in ds.img_ids) == ["a.png", "b.png", "c.png"]
    assert _boxes(ds) == 3  # labels found as Ultralytics finds them: /images/ -> /labels/


def test_txt_list_problems_name_the_line(yolo):
    root = yolo.parent
    (root / "train.txt").write_text("./images/train/a.png\n./images/train/gone.png\nnotes.md\n./images/train/a.png\n")
    _edit(yolo, train="train.txt")
    with pytest.raises(
        DatasetError, match=r"train\.txt line 2: \./images/train/gone\.png: image .*gone\.png not found"
    ):
        YOLODataset(data_yaml=str(yolo))
    with pytest.warns(UserWarning) as caught:
        ds = YOLODataset(data_yaml=str(yolo), on_error="skip")
    text = "\n".join(str(w.message) for w in caught)
    assert "dropped 1 image(s) (listed_missing: 1)" in text and "train.txt line 3: notes.md is no image" in text
    assert len(ds) == 1
    kinds = {p.kind: p.message for p in ds.notes}
    assert "train.txt line 3: notes.md is no image file" in kinds["not_an_image"]
    assert "train.txt line 4: ./images/train/a.png repeats line 1" in kinds["listed_twice"]


# ----------------------------------------------------------------------------- 6: duplicated and zero-size lines


def _label(yolo: Path, stem: str, text: str) -> None:
    (yolo.parent / "labels" / "train" / f"{stem}.txt").write_text(text)


def test_duplicates_removed_and_empty_boxes_reported(yolo):
    _label(yolo, "a", "0 0.5 0.5 0.5 0.5\n0 0.50 0.5 0.5 0.500\n")
    _label(yolo, "c", "1 0.5 0.5 0 0.2\n")
    with pytest.warns(UserWarning) as caught:
        ds = YOLODataset(data_yaml=str(yolo))
    text = "\n".join(str(w.message) for w in caught)
    assert "labels/train/a.txt line 2: the same label as line 1; removed" in text
    assert "labels/train/c.txt line 1: the box has zero width or height (0 x 9.6 px" in text
    assert _boxes(ds) == 3  # a: 1 (not 2), b: 2, c: 0
    report = check_yolo(yolo, ["train"], read_images=False)[0]
    kinds = {p.kind: p.message for p in report.warnings}
    assert kinds["duplicate_label"].endswith("a.txt line 2: the same label as line 1; removed (as Ultralytics does)")
    assert "c.txt line 1: the box has zero width" in kinds["empty_box"]
    assert not report.errors


# ----------------------------------------------------------------------------- 7: box lines in YOLO-seg files


def test_box_line_among_polygons_names_file_and_line(yolo):
    """A YOLO-seg dataset with one box line: Ultralytics refuses the file; detkit names the file and line."""
    _label(yolo, "a", POLY + "1 0.5 0.5 0.2 0.2\n")
    _label(yolo, "b", POLY)
    with pytest.raises(DatasetError, match=r"a\.txt line 2: a box line .*labels mix segment and detection rows"):
        YOLODataset(data_yaml=str(yolo))
    with pytest.warns(UserWarning, match=r"dropped 1 image\(s\) \(bad_annotation: 1\) and 1 annotation\(s\)"):
        ds = YOLODataset(data_yaml=str(yolo), on_error="skip", with_masks=True)
    assert "a.png" not in [ds.coco.imgs[i]["file_name"] for i in ds.img_ids]  # it goes, as Ultralytics drops it
    report = check_yolo(yolo, ["train"], read_images=False)[0]
    assert len(report.errors) == 1 and "labels/train/a.txt line 2: a box line" in report.errors[0].message
    assert not any("annotation #" in p.message for p in report.problems)  # no COCO ids


def test_box_lines_with_masks(yolo):
    with pytest.raises(DatasetError, match=r"labels/train/a\.txt line 1: a box line .* has no mask, and masks are"):
        YOLODataset(data_yaml=str(yolo), with_masks=True)
    assert _boxes(YOLODataset(data_yaml=str(yolo))) == 3  # boxes alone: a detection dataset


def test_label_file_with_a_byte_order_mark(yolo):
    (yolo.parent / "labels" / "train" / "a.txt").write_bytes(b"\xef\xbb\xbf0 0.5 0.5 0.5 0.5\n")
    assert _boxes(YOLODataset(data_yaml=str(yolo))) == 3


# ----------------------------------------------------------------------------- images without labels, misspelt keys


def test_images_without_a_label_file_are_counted_as_background(yolo):
    """Ultralytics' "N backgrounds": one warning (and one line of detkit check) counts the images without a label
    file; an empty label file (c.txt) is a negative too, but not a missing file."""
    (yolo.parent / "labels" / "train" / "b.txt").unlink()
    found = r"1 of 3 images have no label file in .*labels/train, e\.g\. b\.txt \(for b\.png\): treated as background"
    with pytest.warns(UserWarning, match=found):
        ds = YOLODataset(data_yaml=str(yolo))
    assert ds.unlabelled == 1 and ds.no_labels_note is None and len(ds) == 3
    report = check_yolo(yolo, ["train"], read_images=False)[0]
    notes = [p.message for p in report.warnings if p.kind == "missing_label_file"]
    assert len(notes) == 1 and "1 of 3 images have no label file" in notes[0]


def test_no_label_file_at_all_says_where_labels_were_looked_for(yolo):
    """No image has a label file (labels written one folder too deep, as `coco2yolo --out-dir labels/train` does):
    the warning gives the path rule and the file looked for, not "give the json that has the annotations"."""
    labels = yolo.parent / "labels" / "train"
    (labels / "labels").mkdir()
    for txt in labels.glob("*.txt"):
        txt.rename(labels / "labels" / txt.name)
    with pytest.warns(UserWarning) as caught:
        ds = YOLODataset(data_yaml=str(yolo))
    text = "\n".join(str(w.message) for w in caught)
    assert "none of the 3 images has a label file: labels are looked for by Ultralytics' rule" in text
    assert f"{yolo.parent / 'images' / 'train' / 'a.png'} -> {labels / 'a.txt'}, not found" in text
    assert text.count("none of the 3 images") == 1 and "give the json that has them" not in text
    assert "label file(s) have no image" in text  # the files one folder too deep are named
    assert ds.unlabelled == 3 and "give label_dir" in ds.no_labels_note
    report = check_yolo(yolo, ["train"], read_images=False)[0]
    assert [p.kind for p in report.warnings].count("no_label_files") == 1


def test_a_misspelt_key_is_named_with_its_nearest(yolo):
    """`pth:` for `path:` is ignored (as Ultralytics ignores it), and the error it causes names it; other unknown
    keys (Roboflow's, download:) say nothing."""
    (yolo.parent / "sub").mkdir()
    for folder in ("images", "labels"):
        (yolo.parent / folder).rename(yolo.parent / "sub" / folder)
    data = yaml.safe_load(yolo.read_text())
    del data["path"]
    yolo.write_text(yaml.safe_dump({**data, "pth": "sub", "roboflow": {"workspace": "w"}, "download": "x"}))
    with pytest.raises(
        DatasetError, match=r"without path: .* has the unknown key 'pth:' \(did you mean 'path:'\?\), wh"
    ):
        YOLODataset(data_yaml=str(yolo))
    yolo.write_text(yaml.safe_dump({**data, "path": "sub", "trian": data["train"], "train": None}))
    with pytest.raises(DatasetError, match=r"no 'train' split .*unknown key 'trian:' \(did you mean 'train:'\?\)"):
        YOLODataset(data_yaml=str(yolo))
    with pytest.warns(UserWarning, match=r"unknown key 'trian:' is ignored; did you mean 'train:'\?"):
        assert len(YOLODataset(data_yaml=str(yolo), split="val")) == 3
