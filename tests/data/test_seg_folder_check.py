"""check_seg_folder (``detkit check --config`` of a SegFolderDataset): every bad pair named, pixel shares counted."""

import shlex
import sys

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image

from detkit.cli.check_dataset import main as check_main
from detkit.data.datasets.seg_folder import SegFolderDataset
from detkit.data.format_check import check_config_data
from detkit.data.seg_folder_check import check_seg_folder


def _folder(root, n=4, size=(24, 32)):
    """n images with label maps of values 0 (background) and 1 (cat); class 2 (dog) in none."""
    (root / "img").mkdir(parents=True)
    (root / "ann").mkdir()
    for i in range(n):
        cv2.imwrite(str(root / "img" / f"im{i}.png"), np.full((*size, 3), 40 * i, np.uint8))
        sem = np.zeros(size, np.uint8)
        sem[: size[0] // 2] = 1
        Image.fromarray(sem).save(root / "ann" / f"im{i}.png")
    return root / "img", root / "ann"


def _kinds(report):
    return sorted((p.severity, p.kind) for p in report.problems)


def test_a_clean_folder_counts_maps_and_pixels_per_class(tmp_path):
    img_dir, ann_dir = _folder(tmp_path)
    ds = SegFolderDataset(img_dir, ann_dir, classes=["background", "cat", "dog"])
    report = check_seg_folder(ds, "data.train of x.yaml")
    assert _kinds(report) == [("warning", "class_without_pixels")] and "class 'dog' (value 2)" in report.format()
    assert report.class_images == {"background": 4, "cat": 4, "dog": 0}
    assert report.class_pixels == {"background": 4 * 12 * 32, "cat": 4 * 12 * 32, "dog": 0}
    assert report.sizes == {(24, 32): 4} and not report.errors
    assert "0 error(s), 1 warning(s)" in report.format()


def test_every_bad_pair_is_an_error_naming_its_files(tmp_path):
    img_dir, ann_dir = _folder(tmp_path, n=6)
    cv2.imwrite(str(img_dir / "extra.png"), np.zeros((24, 32, 3), np.uint8))  # no label map
    Image.fromarray(np.zeros((24, 32), np.uint8)).save(ann_dir / "orphan.png")  # no image
    Image.fromarray(np.full((24, 32), 7, np.uint8)).save(ann_dir / "im1.png")  # value 7 > 3 classes
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(ann_dir / "im2.png")  # colour map
    Image.fromarray(np.zeros((20, 32), np.uint8)).save(ann_dir / "im3.png")  # another size
    (img_dir / "im4.png").write_bytes(b"not a png")  # unreadable image
    ds = SegFolderDataset(img_dir, ann_dir, classes=["background", "cat", "dog"], on_error="skip")
    report = check_seg_folder(ds, "data.train of x.yaml")
    errors = {p.kind: p.message for p in report.errors}
    assert sorted(errors) == ["bad_label_map", "no_label_map", "size_mismatch", "unreadable_image"]
    assert len([p for p in report.errors if p.kind == "bad_label_map"]) == 2  # the value 7 and the colour map
    assert "extra.png has no label map" in errors["no_label_map"] and "im3.png is 32x20" in errors["size_mismatch"]
    assert "im4.png" in errors["unreadable_image"]
    assert ("warning", "unused_files") in _kinds(report) and "orphan.png" in report.format()
    assert report.sizes == {(24, 32): 2}  # im0 and im5: the only good pairs
    # without decoding the images: sizes from the headers, the unreadable one still found
    fast = check_seg_folder(ds, "x", read_images=False)
    assert sorted(p.kind for p in fast.errors) == sorted(p.kind for p in report.errors)


def test_check_config_reports_a_segmentation_config_instead_of_refusing_it(tmp_path, capsys):
    img_dir, ann_dir = _folder(tmp_path)
    Image.fromarray(np.full((24, 32), 255, np.uint8)).save(ann_dir / "im0.png")
    split = {"type": "SegFolderDataset", "img_dir": str(img_dir), "mask_dir": str(ann_dir), "classes": ["bg", "cat"]}
    config = tmp_path / "seg.yaml"
    config.write_text(yaml.safe_dump({"data": {"train": split, "val": dict(split)}}))
    reports = check_config_data(yaml.safe_load(config.read_text()), str(config))
    assert len(reports) == 2 and not any(r.errors for r in reports)
    assert check_main(["--config", str(config), "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert f"Summary of data.val of {config}: 4 image(s) read, 2 classes" in out
    assert "ignore (255): 25.0% of the pixels" in out
    Image.fromarray(np.full((24, 32), 9, np.uint8)).save(ann_dir / "im1.png")
    assert check_main(["--config", str(config), "--split", "train"]) == 1
    assert "ERROR [bad_label_map] label map" in capsys.readouterr().out


def test_binary_0_255_masks_are_named_with_the_fix(tmp_path):
    img_dir, ann_dir = _folder(tmp_path)
    for i in range(4):
        sem = np.zeros((24, 32), np.uint8)
        sem[:6] = 255
        Image.fromarray(sem).save(ann_dir / f"im{i}.png")
    report = check_seg_folder(SegFolderDataset(img_dir, ann_dir, classes=["background", "shape"]), "data.val of x")
    hint = [p for p in report.warnings if p.kind == "ignore_as_class"]
    assert [p.message for p in hint] == [
        "class 'shape' has no pixel in data.val's label maps but 255 (ignore) covers 25.0% of them: 0/255 binary "
        "masks? map 255 to the class, e.g. label_map: {255: 1} on data.train and data.val (docs/segmentation.md)"
    ]
    fixed = SegFolderDataset(img_dir, ann_dir, classes=["background", "shape"], label_map={255: 1})
    assert not check_seg_folder(fixed, "data.val of x").problems


def test_a_mask_suffix_after_the_stem_pairs_and_finds_orphans(tmp_path):
    img_dir, ann_dir = _folder(tmp_path)
    for p in ann_dir.glob("*.png"):
        p.rename(ann_dir / f"{p.stem}_mask.png")
    Image.fromarray(np.zeros((24, 32), np.uint8)).save(ann_dir / "lost_mask.png")
    ds = SegFolderDataset(img_dir, ann_dir, classes=["background", "cat"], mask_suffix="_mask.png")
    report = check_seg_folder(ds, "data.train of x")
    assert _kinds(report) == [("warning", "unused_files")] and "lost_mask.png" in report.format()
    assert "1 label map(s)" in report.format() and report.class_images == {"background": 4, "cat": 4}


def _one_line_error(capsys, args):
    with pytest.raises(SystemExit) as e:
        check_main(args)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    return err.removeprefix("detkit check: error: ").removeprefix("check_dataset: error: ")


def _run_the_command(command, capsys):
    """Run the ``detkit check --config ...`` command a message gives (its arguments, from ``--config`` on)."""
    argv = shlex.split("--config " + command.split(" --config ", 1)[1])
    assert check_main(argv) == 0, capsys.readouterr()
    return capsys.readouterr().out


def test_two_folders_of_images_and_label_maps_get_the_command_that_checks_them(tmp_path, capsys, monkeypatch):
    """`detkit check IMAGES MASKS` answered "not a COCO json file" without saying how a segmentation folder is
    checked: the answer is the --config command, which runs (either order of the folders)."""
    monkeypatch.setattr(sys, "argv", ["/usr/bin/detkit"])  # the command named as the user ran it
    img_dir, ann_dir = _folder(tmp_path / "data")
    (tmp_path / "data" / "classes.txt").write_text("background\ncat\n")
    for args, order in (([img_dir, ann_dir], "second folder"), ([ann_dir, img_dir], "first folder")):
        err = _one_line_error(capsys, [str(a) for a in args])
        assert err.startswith(f"the {order} holds label maps named like the ")
        command = err.split("check them with: ", 1)[1]
        assert command == (
            f"detkit check --config seg/semfpn_r18_shapes --split train --set data.train.img_dir={img_dir} "
            f"data.train.mask_dir={ann_dir} data.train.classes={tmp_path / 'data' / 'classes.txt'}"
        )
    assert "Summary of data.train of seg/semfpn_r18_shapes: 4 image(s) read, 2 classes" in _run_the_command(
        command, capsys
    )
    err = _one_line_error(capsys, [str(img_dir), str(img_dir)])  # no label maps: the forms that take folders
    assert err.startswith(f"{img_dir} is a folder, not a COCO annotation file") and "--config CONFIG" in err


def test_a_segmentation_root_names_mask_dir_and_the_check_command(tmp_path, capsys, monkeypatch):
    """`detkit check ROOT` recommended "SegFolderDataset (img_dir, ann_dir; ...)", a key the config refuses."""
    monkeypatch.setattr(sys, "argv", ["/usr/bin/detkit"])
    _, ann_dir = _folder(tmp_path / "root")
    for p in ann_dir.glob("*.png"):
        p.rename(ann_dir / f"{p.stem}_mask.png")
    monkeypatch.chdir(tmp_path)  # (a path as typed: the command quotes it back)
    err = _one_line_error(capsys, ["root"])
    assert "SegFolderDataset (img_dir, mask_dir, classes;" in err and "ann_dir" not in err
    assert err.endswith(
        "data.train.mask_dir=root/ann data.train.classes=CLASSES.txt data.train.mask_suffix=_mask.png (CLASSES.txt: "
        "one name per line, label value = line index)"
    )
    classes = tmp_path / "CLASSES.txt"
    classes.write_text("background\ncat\n")
    command = err.split("check it with: ", 1)[1].split(" (CLASSES.txt", 1)[0].replace("CLASSES.txt", str(classes))
    assert "4 image(s) read" in _run_the_command(command, capsys)
