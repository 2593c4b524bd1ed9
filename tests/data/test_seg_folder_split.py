"""SegFolderDataset's ``split_file``: Pascal VOC's ImageSets lists pick the images of a split."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import yaml
from PIL import Image

from detkit.cli.check_dataset import main as check_main
from detkit.config import ConfigError, load_config
from detkit.data.datasets.seg_folder import SegFolderDataset
from detkit.data.format_check import check_config_data
from detkit.data.validate import DatasetError

CLASSES = ["background", "aeroplane"]


def _voc(root, train="a\nc\n", val="b\n"):
    """A VOC tree: JPEGImages (a..d; d has no label map, as most VOC images), SegmentationClass, ImageSets."""
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / d).mkdir(parents=True)
    for k, stem in enumerate("abcd"):
        Image.fromarray(np.full((12, 16, 3), 50 * k, np.uint8)).save(root / "JPEGImages" / f"{stem}.jpg")
        if stem != "d":
            sem = np.zeros((12, 16), np.uint8)
            sem[:4] = 1
            Image.fromarray(sem, mode="L").save(root / "SegmentationClass" / f"{stem}.png")
    (root / "ImageSets/Segmentation/train.txt").write_text(train)
    (root / "ImageSets/Segmentation/val.txt").write_text(val)
    return root


def _split(root, name="train", **kw):
    return {
        "type": "SegFolderDataset",
        "img_dir": str(root / "JPEGImages"),
        "mask_dir": str(root / "SegmentationClass"),
        "split_file": str(root / f"ImageSets/Segmentation/{name}.txt"),
        "classes": CLASSES,
        **kw,
    }


def _build(spec: dict) -> SegFolderDataset:
    return SegFolderDataset(**{k: v for k, v in spec.items() if k != "type"})


def test_the_split_file_picks_its_images_in_its_order(tmp_path):
    root = _voc(tmp_path, train="c\r\n\na\n")  # CRLF and a blank line
    train, val = _build(_split(root)), _build(_split(root, "val"))
    assert [p.rsplit("/", 1)[-1] for p in train.images] == ["c.jpg", "a.jpg"]
    assert [p.rsplit("/", 1)[-1] for p in val.masks] == ["b.png"]
    assert train[0]["sem_seg"].shape == (12, 16) and len(train.aspect_ratios) == 2


def test_a_stem_may_carry_the_image_ending(tmp_path):
    assert len(_build(_split(_voc(tmp_path, train="a.jpg\nc\n")))) == 2


def test_a_listed_stem_without_an_image_names_the_file_line_and_stem(tmp_path):
    root = _voc(tmp_path, train="a\nzz\nc\nyy\n")
    with pytest.raises(DatasetError) as info:
        _build(_split(root))
    msg = str(info.value)
    assert "train.txt line 2" in msg and "'zz'" in msg and "1 more" in msg and "on_error: skip" in msg
    with pytest.warns(UserWarning, match="line 2"):
        ds = _build(_split(root, on_error="skip"))
    assert len(ds) == 2 and ds.split_missing == [(2, "zz"), (4, "yy")]


def test_a_missing_or_empty_split_file(tmp_path):
    root = _voc(tmp_path, train="\n")
    with pytest.raises(DatasetError, match="lists no image stem"):
        _build(_split(root))
    with pytest.raises(DatasetError, match="split_file .*nope.txt not found"):
        _build(_split(root, "nope"))
    with pytest.raises(DatasetError, match="line 1"):  # every stem missing: refused even under skip
        _build(_split(_voc(tmp_path / "x", train="zz\n"), on_error="skip"))


def test_the_config_knows_split_file(tmp_path):
    root = _voc(tmp_path)
    base = str(tmp_path / "base.yaml")
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({"data": {"train": _split(root)}}))
    assert load_config(base)["data"]["train"]["split_file"].endswith("train.txt")
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump({"_base_": [base], "data": {"train": {"split_fle": "x"}}}))
    with pytest.raises(ConfigError, match="'data.train.split_fle' \\(nearest valid: 'data.train.split_file'\\)"):
        load_config(tmp_path / "typo.yaml")


def test_detkit_check_reads_only_the_split(tmp_path, capsys):
    root = _voc(tmp_path)
    config = tmp_path / "voc.yaml"
    config.write_text(yaml.safe_dump({"data": {"train": _split(root), "val": _split(root, "val")}}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning either: d.jpg and the other split's maps are no problem
        train, val = check_config_data(yaml.safe_load(config.read_text()), str(config))
    assert not train.problems and not val.problems
    assert sum(train.sizes.values()) == 2 and sum(val.sizes.values()) == 1
    assert "ImageSets/Segmentation/train.txt" in train.format()
    (root / "ImageSets/Segmentation/val.txt").write_text("b\nzz\n")
    assert check_main(["--config", str(config), "--split", "val"]) == 1
    out = capsys.readouterr().out
    assert "val.txt line 2" in out and "'zz'" in out
