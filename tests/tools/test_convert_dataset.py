"""Command-line tests of tools/convert_dataset.py."""

import hashlib
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from detkit.data.converters import convert_coco_to_yolo, convert_voc

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "convert_dataset.py"
VOC = ROOT / "tests" / "fixtures" / "voc" / "Annotations"


class _Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _tool():
    """The tool's module (tools/convert_dataset.py runs detkit.cli.convert_dataset.main)."""
    import detkit.cli.convert_dataset as mod

    return mod


def _run(*args, capsys):
    """Run the tool's main() in-process (a subprocess per call would re-import torch each time)."""
    try:
        code = _tool().main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return _Result(code, out.out, out.err)


def test_script_runs_as_python_tools_convert_dataset(voc, tmp_path):
    ann, img = voc
    r = subprocess.run(
        [
            sys.executable,
            str(TOOL),
            "voc2coco",
            "--ann-dir",
            str(ann),
            "--img-dir",
            str(img),
            "--out",
            str(tmp_path / "o.json"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "o.json").read_text())["categories"][0]["name"] == "chair"


def _digest(folder: Path) -> dict:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def voc(tmp_path):
    ann = tmp_path / "Annotations"
    shutil.copytree(VOC, ann)
    img = tmp_path / "JPEGImages"
    img.mkdir()
    for x in sorted(ann.glob("*.xml")):
        r = ET.parse(x).getroot()
        w, h = int(r.find("size/width").text), int(r.find("size/height").text)
        cv2.imwrite(str(img / r.find("filename").text), np.zeros((h, w, 3), np.uint8))
    return ann, img


def test_voc2coco_then_coco2yolo_then_yolo2coco(voc, tmp_path, capsys):
    ann, img = voc
    before = {**_digest(ann), **{"img/" + k: v for k, v in _digest(img).items()}}
    r = _run("voc2coco", "--ann-dir", ann, "--img-dir", img, "--out", tmp_path / "voc.json", capsys=capsys)
    assert r.returncode == 0, r.stderr
    assert "images=3" in r.stdout and "annotations=8" in r.stdout
    coco = json.loads((tmp_path / "voc.json").read_text())
    person = [a for a in coco["annotations"] if a["image_id"] == 3]  # 2007_000027 sorts last
    assert person[0]["bbox"] == [173.0, 100.0, 176.0, 251.0]

    r = _run(
        "coco2yolo",
        "--ann-file",
        tmp_path / "voc.json",
        "--img-dir",
        img,
        "--out-dir",
        tmp_path / "yolo",
        capsys=capsys,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "yolo" / "classes.txt").read_text() == "chair\ndog\nperson\n"
    assert sorted(p.name for p in (tmp_path / "yolo" / "labels").iterdir()) == [
        "000001.txt",
        "000005.txt",
        "2007_000027.txt",
    ]

    r = _run(
        "yolo2coco",
        "--label-dir",
        tmp_path / "yolo" / "labels",
        "--img-dir",
        img,
        "--classes",
        tmp_path / "yolo" / "classes.txt",
        "--out",
        tmp_path / "back.json",
        capsys=capsys,
    )
    assert r.returncode == 0, r.stderr
    back = json.loads((tmp_path / "back.json").read_text())
    assert [c["name"] for c in back["categories"]] == ["chair", "dog", "person"]
    assert [a["category_id"] for a in back["annotations"]] == [a["category_id"] for a in coco["annotations"]]
    np.testing.assert_allclose(
        [a["bbox"] for a in back["annotations"]], [a["bbox"] for a in coco["annotations"]], atol=1e-3
    )
    after = {**_digest(ann), **{"img/" + k: v for k, v in _digest(img).items()}}
    assert after == before  # inputs untouched
    assert not list(tmp_path.rglob("*.tmp*"))  # no temporary files left


@pytest.mark.parametrize("case", ["bad_xml", "unknown_class", "missing_dir", "usage"])
def test_errors_are_one_line_exit_2(voc, tmp_path, case, capsys):
    ann, img = voc
    out = tmp_path / "out.json"
    if case == "bad_xml":
        (ann / "zzz.xml").write_text("<annotation><object>")
        args = ["voc2coco", "--ann-dir", ann, "--img-dir", img, "--out", out]
        needle = "zzz.xml"
    elif case == "unknown_class":
        (tmp_path / "cls.txt").write_text("person\nchair\n")
        args = ["voc2coco", "--ann-dir", ann, "--img-dir", img, "--out", out, "--classes", tmp_path / "cls.txt"]
        needle = "000001.xml"
    elif case == "missing_dir":
        (tmp_path / "cls.txt").write_text("person\n")
        args = [
            "yolo2coco",
            "--label-dir",
            tmp_path / "nope",
            "--img-dir",
            img,
            "--classes",
            tmp_path / "cls.txt",
            "--out",
            out,
        ]
        needle = "nope"
    else:
        args = ["coco2yolo", "--ann-file", out]
        needle = "--img-dir"
    r = _run(*args, capsys=capsys)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and needle in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()


def _cli(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True, cwd=cwd or ROOT, timeout=300
    )


def _rename_images(img: Path, ext: str) -> None:
    for p in sorted(img.glob("*.jpg")):
        cv2.imwrite(str(p.with_suffix(ext)), cv2.imread(str(p)))
        p.unlink()


@pytest.mark.parametrize("xml_ext", [".jpg", ".tif"])
def test_voc2coco_finds_images_by_stem(voc, tmp_path, xml_ext):
    ann, img = voc
    for x in ann.glob("*.xml"):  # the XML names .jpg (as VOC does) or .tif; the folder holds .png
        x.write_text(x.read_text().replace(".jpg</filename>", f"{xml_ext}</filename>"))
    _rename_images(img, ".png")
    before = _digest(tmp_path)
    r = _cli("voc2coco", "--ann-dir", ann, "--img-dir", img, "--out", tmp_path / "out" / "voc.json")
    assert r.returncode == 0, r.stderr
    assert "3 image(s) found by stem" in r.stdout and f"000001.xml: 000001{xml_ext} -> 000001.png" in r.stdout
    coco = json.loads((tmp_path / "out" / "voc.json").read_text())
    assert sorted(im["file_name"] for im in coco["images"]) == ["000001.png", "000005.png", "2007_000027.png"]
    assert {k: v for k, v in _digest(tmp_path).items() if not k.startswith("out/")} == before
    from detkit.data.datasets.coco import CocoDataset

    ds = CocoDataset(tmp_path / "out" / "voc.json", img)
    assert [ds[i]["image"].shape[:2] for i in range(len(ds))] == [(500, 353), (375, 500), (500, 486)]


def test_voc2coco_refuses_two_images_of_one_stem(voc, tmp_path):
    ann, img = voc
    cv2.imwrite(str(img / "000005.png"), np.zeros((375, 500, 3), np.uint8))
    (img / "000005.jpg").rename(img / "000005.bmp")
    r = _cli("voc2coco", "--ann-dir", ann, "--img-dir", img, "--out", tmp_path / "o.json")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "000005.xml" in r.stderr and "000005.bmp, 000005.png" in r.stderr
    assert not (tmp_path / "o.json").exists()


def test_voc2coco_reports_xml_files_without_an_image(voc, tmp_path):
    ann, img = voc
    (img / "000005.jpg").unlink()
    r = _cli("voc2coco", "--ann-dir", ann, "--img-dir", img, "--out", tmp_path / "o.json")
    assert r.returncode == 1, r.stderr  # written, but incomplete: documented exit status 1
    assert "1 XML file(s) have no image" in r.stderr and "000005.xml (000005.jpg)" in r.stderr
    assert "missing_images=1" in r.stdout and "Traceback" not in r.stderr
    assert len(json.loads((tmp_path / "o.json").read_text())["images"]) == 2
    r = _cli("voc2coco", "--ann-dir", ann, "--img-dir", img, "--out", tmp_path / "k.json", "--keep-missing-images")
    assert r.returncode == 0 and "listed with their XML <size>" in r.stderr
    assert len(json.loads((tmp_path / "k.json").read_text())["images"]) == 3
    for p in img.glob("*.jpg"):
        p.unlink()
    r = _cli("voc2coco", "--ann-dir", ann, "--img-dir", img, "--out", tmp_path / "n.json")
    assert r.returncode == 2 and "none of the 3 XML files has its image there" in r.stderr


@pytest.fixture
def yolo(voc, tmp_path):
    """YOLO labels of the VOC fixture: (label dir, image dir, classes file)."""
    ann, img = voc
    coco_file = tmp_path / "voc.json"
    convert_voc(ann, img, coco_file)
    convert_coco_to_yolo(coco_file, img, tmp_path / "yolo")
    return tmp_path / "yolo" / "labels", img, tmp_path / "yolo" / "classes.txt"


def _mistake_args(case: str, tmp: Path, voc, yolo) -> tuple[list, str]:
    """(arguments, a word the message must contain) for one mistake of input."""
    ann, img = voc
    labels, _, classes = yolo
    empty = tmp / "empty.txt"
    empty.write_text("\n\n")
    (tmp / "a_file").write_text("x")
    v = ["voc2coco", "--ann-dir", ann, "--img-dir", img, "--out"]
    y = ["yolo2coco", "--label-dir", labels, "--img-dir", img, "--classes"]
    c = ["coco2yolo", "--ann-file", tmp / "voc.json", "--img-dir", img, "--out-dir"]
    cases = {
        "voc_missing_ann_dir": (
            ["voc2coco", "--ann-dir", tmp / "Annotatons", "--img-dir", img, "--out", tmp / "o.json"],
            "--ann-dir",
        ),
        "voc_missing_img_dir": (
            ["voc2coco", "--ann-dir", ann, "--img-dir", tmp / "JPEG", "--out", tmp / "o.json"],
            "--img-dir",
        ),
        "voc_empty_classes": ([*v, tmp / "o.json", "--classes", empty], "is empty"),
        "voc_out_is_folder": ([*v, ann], "is a folder"),
        "voc_out_under_a_file": ([*v, tmp / "a_file" / "o.json"], "lies under, a file"),
        "voc_out_is_an_xml": ([*v, ann / "000001.xml"], "is also an input"),
        "voc_out_is_the_classes_file": ([*v, classes, "--classes", classes], "is also an input"),
        "yolo_missing_label_dir": (
            ["yolo2coco", "--label-dir", tmp / "lbl", "--img-dir", img, "--classes", classes, "--out", tmp / "o.json"],
            "--label-dir",
        ),
        "yolo_missing_img_dir": (
            [
                "yolo2coco",
                "--label-dir",
                labels,
                "--img-dir",
                tmp / "im",
                "--classes",
                classes,
                "--out",
                tmp / "o.json",
            ],
            "--img-dir",
        ),
        "yolo_empty_classes": ([*y, empty, "--out", tmp / "o.json"], "is empty"),
        "yolo_missing_classes": ([*y, tmp / "classes.txt", "--out", tmp / "o.json"], "not found"),
        "yolo_classes_is_a_folder": ([*y, labels, "--out", tmp / "o.json"], "is a folder"),
        "yolo_out_is_the_classes_file": ([*y, classes, "--out", classes], "is also an input"),
        "yolo_out_is_a_label_file": ([*y, classes, "--out", labels / "000001.txt"], "is also an input"),
        "coco_missing_ann_file": (
            ["coco2yolo", "--ann-file", tmp / "x.json", "--img-dir", img, "--out-dir", tmp / "y"],
            "not found",
        ),
        "coco_ann_file_is_a_folder": (
            ["coco2yolo", "--ann-file", ann, "--img-dir", img, "--out-dir", tmp / "y"],
            "is a folder",
        ),
        "coco_missing_img_dir": (
            ["coco2yolo", "--ann-file", tmp / "voc.json", "--img-dir", tmp / "im", "--out-dir", tmp / "y"],
            "--img-dir",
        ),
        "coco_out_dir_is_img_dir": ([*c, img], "inside --img-dir"),
        "coco_out_dir_is_a_file": ([*c, tmp / "a_file"], "is a file"),
    }
    return cases[case]


MISTAKES = [
    "voc_missing_ann_dir",
    "voc_missing_img_dir",
    "voc_empty_classes",
    "voc_out_is_folder",
    "voc_out_under_a_file",
    "voc_out_is_an_xml",
    "voc_out_is_the_classes_file",
    "yolo_missing_label_dir",
    "yolo_missing_img_dir",
    "yolo_empty_classes",
    "yolo_missing_classes",
    "yolo_classes_is_a_folder",
    "yolo_out_is_the_classes_file",
    "yolo_out_is_a_label_file",
    "coco_missing_ann_file",
    "coco_ann_file_is_a_folder",
    "coco_missing_img_dir",
    "coco_out_dir_is_img_dir",
    "coco_out_dir_is_a_file",
]


@pytest.mark.parametrize("case", MISTAKES)
def test_mistakes_exit_2_in_one_line_and_touch_nothing(voc, yolo, tmp_path, case):
    args, word = _mistake_args(case, tmp_path, voc, yolo)
    before = _digest(tmp_path)
    r = _cli(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"convert {args[0]}: error:") and word in line, line
    assert _digest(tmp_path) == before  # inputs byte-identical, nothing written


@pytest.mark.parametrize("command", ["voc2coco", "coco2yolo"])
def test_unwritable_output_is_one_message(voc, tmp_path, monkeypatch, capsys, command):
    ann, img = voc
    convert_voc(ann, img, tmp_path / "voc.json")
    (tmp_path / "ro").mkdir()

    def refuse(path, text):  # what a folder without write permission does (the tests run as root)
        raise PermissionError(13, "Permission denied", str(path.parent / f".{path.name}.tmp"))

    monkeypatch.setattr("detkit.data.converters.common.write_text_atomic", refuse)
    if command == "voc2coco":
        args = ["voc2coco", "--ann-dir", ann, "--img-dir", img, "--out", tmp_path / "ro" / "o.json"]
    else:
        args = ["coco2yolo", "--ann-file", tmp_path / "voc.json", "--img-dir", img, "--out-dir", tmp_path / "ro"]
    r = _run(*args, capsys=capsys)
    (line,) = r.stderr.strip().splitlines()
    assert r.returncode == 2 and "cannot write in" in line and "Permission denied" in line
    assert str(tmp_path / "ro") in line and not list((tmp_path / "ro").iterdir())


def test_coco2yolo_refuses_bad_records(voc, tmp_path):
    ann, img = voc
    convert_voc(ann, img, tmp_path / "voc.json")
    coco = json.loads((tmp_path / "voc.json").read_text())
    coco["annotations"][2]["category_id"] = 99
    (tmp_path / "bad.json").write_text(json.dumps(coco))
    r = _cli("coco2yolo", "--ann-file", tmp_path / "bad.json", "--img-dir", img, "--out-dir", tmp_path / "y")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "bad.json" in r.stderr and "[unknown_category]" in r.stderr and "id 3" in r.stderr
    assert not (tmp_path / "y").exists()


def test_yolo2coco_warnings_are_one_line_each(tmp_path, capsys):
    import cv2
    import numpy as np

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.zeros((20, 20, 3), np.uint8))
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0 0.2\n")
    (tmp_path / "classes.txt").write_text("cat\n")
    r = _run(
        "yolo2coco", "--label-dir", tmp_path / "labels", "--img-dir", tmp_path / "images",
        "--classes", tmp_path / "classes.txt", "--out", tmp_path / "out.json", capsys=capsys,
    )  # fmt: skip
    assert r.returncode == 0 and (tmp_path / "out.json").is_file()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 and all(
        line.endswith(("removed (as Ultralytics does)", "fix the line")) for line in lines
    ), lines
    assert lines[0].startswith("convert yolo2coco: WARNING: ") and "UserWarning" not in r.stderr
