"""check_image_folder: every problem of a classification folder (as ImageFolderDataset lists them), unreadable
images, class counts and the imbalance report; tools/check_dataset.py exit statuses for folders."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from detkit.data.folder_check import check_image_folder, imbalance
from detkit.data.validate import DatasetError

TOOLS = Path(__file__).resolve().parents[2] / "tools"


def _images(folder: Path, n: int, size=(16, 20), grey: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image = np.full(size if grey else (*size, 3), 40 + i, np.uint8)
        cv2.imwrite(str(folder / f"{i:03d}.png"), image)


@pytest.fixture
def messy(tmp_path):
    root = tmp_path / "train"
    _images(root / "big", 30)
    _images(root / "small", 4, grey=True)
    _images(root / "mid", 12, size=(24, 24))
    (root / "empty").mkdir()
    (root / "mid" / "broken.png").write_bytes(b"not a png")
    (root / "mid" / "zero.jpg").write_bytes(b"")
    _images(root, 1)  # 000.png beside the class folders
    return root


def test_every_problem_counts_and_imbalance(messy):
    before = sorted((p, p.stat().st_mtime_ns) for p in messy.rglob("*"))
    report = check_image_folder(messy)
    assert sorted(p.kind for p in report.errors) == ["empty_class_folder", "empty_image", "unreadable_image"]
    assert sorted(p.kind for p in report.warnings) == ["image_outside_classes", "rare_class"]
    assert report.class_counts == {"big": 30, "empty": 0, "mid": 13, "small": 4}  # broken.png listed, not readable
    assert "broken.png" in next(p.message for p in report.errors if p.kind == "unreadable_image")
    assert report.sizes[(16, 20, 1)] == 4 and report.sizes[(24, 24, 3)] == 12
    text = report.format()
    assert (
        "imbalance (largest / smallest class): 7.5x; under 1/3 of the largest: small; without images: empty" in text
        and "3 error(s), 2 warning(s)" in text
    )
    assert "class 'small' has 4 images, under 1/3 of the largest class's 30" in text
    assert sorted((p, p.stat().st_mtime_ns) for p in messy.rglob("*")) == before  # nothing modified


def test_validation_split_against_the_training_classes(tmp_path):
    _images(tmp_path / "val" / "cat", 12)
    _images(tmp_path / "val" / "wolf", 12)
    report = check_image_folder(tmp_path / "val", classes=["cat", "dog"])
    assert [p.kind for p in report.errors] == ["unknown_class"]
    assert [p.kind for p in report.warnings] == ["class_without_images"]  # a split may lack a class
    assert "class 'dog' has no image" in report.warnings[0].message


def test_csv_dataset_and_balance_figures(tmp_path):
    _images(tmp_path / "img", 12)
    files = sorted(p.name for p in (tmp_path / "img").iterdir())
    rows = [f"{f},{'a' if i < 9 else 'b'}" for i, f in enumerate(files)]
    (tmp_path / "labels.csv").write_text("file,label\n" + "\n".join(rows) + "\n")
    report = check_image_folder(tmp_path / "img", ann_file=tmp_path / "labels.csv", read_images=False)
    assert report.class_counts == {"a": 9, "b": 3} and not report.errors
    assert imbalance(report.class_counts) == (3.0, [])  # exactly 1/3: not under it
    assert [p.kind for p in report.warnings] == ["rare_class", "rare_class"]  # both under 10 images
    assert imbalance({"a": 10, "b": 2, "c": 0}) == (5.0, ["b"]) and imbalance({"a": 0}) == (None, [])


def _check_tool():
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    spec = importlib.util.spec_from_file_location("check_dataset_folder_tool", TOOLS / "check_dataset.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tool_exit_statuses_for_folders(messy, tmp_path, capsys):
    tool = _check_tool()
    assert tool.main([str(messy)]) == 1  # errors found
    assert "3 error(s)" in capsys.readouterr().out
    _images(tmp_path / "ok" / "a", 12)
    _images(tmp_path / "ok" / "b", 12)
    assert tool.main([str(tmp_path / "ok"), "--no-images"]) == 0
    for args, message in (([str(tmp_path / "nope")], "not found"), ([str(messy / "big")], "no class sub-folders")):
        with pytest.raises(SystemExit) as e:
            tool.main(args)
        assert e.value.code == 2 and message in capsys.readouterr().err


def test_no_class_folder_is_a_dataset_error(tmp_path):
    _images(tmp_path / "flat", 2)
    with pytest.raises(DatasetError, match="has no class sub-folders"):
        check_image_folder(tmp_path / "flat")


def test_a_config_whose_splits_are_parts_of_one_folder_checks_each_part(tmp_path):
    from detkit.data.format_check import check_config_data

    for name in ("cat", "dog"):
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(10):
            cv2.imwrite(str(tmp_path / "photos" / name / f"{i}.png"), np.full((8, 8, 3), 20 * i, np.uint8))
    part = {"type": "ImageFolderDataset", "img_dir": str(tmp_path / "photos"), "val_fraction": 0.2}
    cfg = {"data": {"train": {**part, "subset": "train"}, "val": {**part, "subset": "val"}}}
    train, val = check_config_data(cfg, "config.yaml", read_images=False)
    assert sum(train.class_counts.values()) == 16 and sum(val.class_counts.values()) == 4
    assert "part: " in train.format() and "4 images held out for validation" in val.format()
