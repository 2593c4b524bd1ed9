"""Command-line tests of tools/convert_dataset.py."""

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "convert_dataset.py"
VOC = ROOT / "tests" / "fixtures" / "voc" / "Annotations"


class _Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _tool():
    spec = importlib.util.spec_from_file_location("convert_dataset_tool", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
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
