"""The files of a semantic segmentation folder that cannot be what they claim: lossy (JPEG, WebP) label maps, and
classes files whose line index would not be the label value (a blank line, a repeated name, ``0 background``)."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
from PIL import Image

from detkit.data.datasets.image_folder import ImageFolderDataset
from detkit.data.datasets.seg_folder import SegFolderDataset, load_class_names, read_label_map
from detkit.data.datasets.yolo import YOLODataset
from detkit.data.seg_folder_check import check_seg_folder
from detkit.data.validate import DatasetError

CLASSES = [f"c{k}" for k in range(20)]  # many classes: JPEG noise turns edge pixels into other valid classes


def _folder(root, n=2, suffix=".png", fmt=None):
    """n 32x40 images with label maps (values 0, 3, 7) saved as ``<stem><suffix>`` in ``fmt`` (PIL's format)."""
    (root / "img").mkdir(parents=True)
    (root / "ann").mkdir()
    for i in range(n):
        cv2.imwrite(str(root / "img" / f"im{i}.png"), np.full((32, 40, 3), 90, np.uint8))
        sem = np.zeros((32, 40), np.uint8)
        sem[8:20, 5:25], sem[20:, 25:] = 7, 3
        Image.fromarray(sem).save(root / "ann" / f"im{i}{suffix}", format=fmt)
    return root / "img", root / "ann"


@pytest.mark.parametrize("suffix, fixed", [(".jpg", ".png"), (".JPEG", ".png"), ("_mask.jpg", "_mask.png")])
def test_a_jpeg_mask_suffix_is_refused_with_the_png_fix(tmp_path, suffix, fixed):
    img_dir, ann_dir = _folder(tmp_path, suffix=suffix, fmt="JPEG")
    with pytest.raises(DatasetError) as e:
        SegFolderDataset(img_dir, ann_dir, classes=CLASSES, mask_suffix=suffix)
    msg = str(e.value)
    assert msg.startswith(f"mask_suffix '{suffix}' names JPEG label maps, which do not keep class indices: JPEG ")
    assert "along class edges into other values" in msg and msg.endswith(f"; and set mask_suffix: '{fixed}'")
    assert "save the label maps as PNG" in msg


def test_jpeg_noise_is_what_is_refused(tmp_path):
    """Why: a JPEG label map read back holds values that no pixel had, all of them valid classes here."""
    _, ann_dir = _folder(tmp_path, suffix=".jpg", fmt="JPEG")
    with Image.open(ann_dir / "im0.jpg") as im:
        assert set(np.unique(np.asarray(im)).tolist()) - {0, 3, 7}  # e.g. 1, 2, 4, 5, 6 along the edges
    with pytest.raises(DatasetError, match=r"label map .*im0\.jpg is a JPEG file: JPEG compression is lossy"):
        read_label_map(ann_dir / "im0.jpg")


def test_a_webp_mask_suffix_is_refused(tmp_path):
    img_dir, ann_dir = _folder(tmp_path, suffix=".webp", fmt="WEBP")
    with pytest.raises(DatasetError, match=r"^mask_suffix '\.webp' names WebP label maps, .* no one-channel mode"):
        SegFolderDataset(img_dir, ann_dir, classes=CLASSES, mask_suffix=".webp")


def test_a_jpeg_saved_as_png_is_refused_when_read_and_by_the_check(tmp_path):
    img_dir, ann_dir = _folder(tmp_path, n=3)
    Image.fromarray(np.zeros((32, 40), np.uint8)).save(ann_dir / "im1.png", format="JPEG")  # a .png name
    Image.fromarray(np.zeros((32, 40), np.uint8)).save(ann_dir / "im2.png", format="TIFF", compression="jpeg")
    ds = SegFolderDataset(img_dir, ann_dir, classes=CLASSES)
    assert ds[0]["sem_seg"].max() == 7  # a PNG reads as before
    for i in (1, 2):
        with pytest.raises(
            DatasetError, match=rf"^label map .*im{i}\.png is a JPEG file: .* save the label maps as PNG"
        ):
            ds[i]
    report = check_seg_folder(ds, "data.train of x.yaml", read_images=False)
    assert sorted((p.kind, "is a JPEG file" in p.message) for p in report.errors) == [("bad_label_map", True)] * 2
    sem = np.full((32, 40), 7, np.uint8)
    Image.fromarray(sem).save(ann_dir / "im2.png", format="TIFF", compression="tiff_lzw")  # a lossless TIFF reads
    assert np.array_equal(ds[2]["sem_seg"], sem)


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "background\ncat\n\ndog\n",
            "line 3 is blank, between 'cat' and 'dog': a class's label value is the index of its line (the first "
            "line is 0), so a blank line would shift every class below it; delete the blank line(s)",
        ),
        ("\nbackground\ncat\n", "line 1 is blank, before the first name"),
        ("background\ncat\ndog\ncat\n", "line 4 repeats the class name 'cat' (line 2): each class has one label value"),
    ],
)
def test_a_classes_file_whose_line_index_is_not_the_value_is_refused(tmp_path, text, message):
    path = tmp_path / "classes.txt"
    path.write_text(text)
    with pytest.raises(DatasetError) as e:
        load_class_names(path)
    assert str(e.value).startswith(f"classes file {path} {message}")


def test_a_yolo_folders_classes_file_refuses_a_blank_line_too(tmp_path):
    """A YOLO label's class is the line index of its name: a blank line would shift the classes below it."""
    (tmp_path / "images").mkdir()
    path = tmp_path / "classes.txt"
    path.write_text("circle\nrectangle\n\ntriangle\nstar\n")
    with pytest.raises(DatasetError, match=r"line 3 is blank, between 'rectangle' and 'triangle'"):
        YOLODataset(img_dir=str(tmp_path / "images"), classes=str(path))


def test_blank_lines_at_the_end_and_windows_line_ends_are_fine(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_bytes(b"background\r\ncat\r\n\r\n  \n")
    assert load_class_names(path) == ["background", "cat"]


def test_a_repeated_name_in_a_list_or_with_the_background_option_is_refused(tmp_path):
    with pytest.raises(DatasetError, match=r"^classes entry 2 repeats the class name 'cat' \(entry 0\)"):
        load_class_names(["cat", "dog", "cat"])
    img_dir, ann_dir = _folder(tmp_path)
    with pytest.raises(DatasetError, match=r"inserts 'bg' as class 0, but the classes name it as class 1 too"):
        SegFolderDataset(img_dir, ann_dir, classes=["cat", "bg"], background="bg")


def test_index_name_lines_warn_once_and_the_check_reports_them(tmp_path):
    img_dir, ann_dir = _folder(tmp_path)
    path = tmp_path / "classes.txt"
    path.write_text("".join(f"{k} c{k}\n" for k in range(8)))  # "0 c0": the whole line is the name
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # (a warning shown once per place and text, as by default)
        train = SegFolderDataset(img_dir, ann_dir, classes=path)
        SegFolderDataset(img_dir, ann_dir, classes=path)  # data.val with the same file: not again
    assert [str(w.message) for w in caught] == [
        f"classes file {path}: 8 line(s) look like '<index> <name>' (line 1: '0 c0'): the whole line is taken as "
        "the class name, and a class's label value is the index of its line (the first line is 0), not a number "
        "written in it; write the names alone, one per line, in label-value order"
    ]
    assert train.class_names[0] == "0 c0"
    report = check_seg_folder(train, "data.train of x.yaml", read_images=False)
    assert [p.kind for p in report.warnings if "'<index> <name>'" in p.message] == ["numbered_class_names"]


@pytest.mark.parametrize(
    "text, numbered",
    [
        ("0 background\n1 cat\n2 dog\n", True),
        ("1: cat\n2: dog\n3: emu\n", True),  # counting from 1
        ("background\n1,cat\n2,dog\n", True),  # most lines numbered
        ("c0\n3d shapes\nc2\nc3\n", False),  # a name that starts with a digit is no index
        ("1 euro coin\n2 euro coin\n5 cent coin\n", False),  # the numbers do not count up by one
        ("2 wheeler\n3 wheeler\n4 wheeler\n", False),  # nor from 0 or 1
        ("car\n1 euro coin\n2 wheeler\nbus\n", False),  # half the lines only
    ],
)
def test_only_lines_that_look_numbered_as_a_whole_warn(tmp_path, text, numbered):
    path = tmp_path / "classes.txt"
    path.write_text(text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = load_class_names(path)
    assert names == text.splitlines()
    assert [("'<index> <name>'" in str(w.message)) for w in caught] == ([True] if numbered else [])


def test_other_datasets_reading_a_classes_file_refuse_a_repeat_too(tmp_path):
    """A classifier's classes file: the position is the class index there as well."""
    for name in ("cat", "dog"):
        (tmp_path / "img" / name).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "img" / name / "a.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "classes.txt").write_text("cat\ndog\ncat\n")
    with pytest.raises(DatasetError, match=r"line 3 repeats the class name 'cat' \(line 1\)"):
        ImageFolderDataset(tmp_path / "img", classes=tmp_path / "classes.txt")
