"""check_dataset (detkit.data.validate) and the tools/check_dataset.py command line."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from detkit.data.validate import DatasetError, check_dataset

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("_coco_fixtures", ROOT / "tests" / "data" / "conftest.py")
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)
coco_files = _fixtures.coco_files  # re-export the fixture for this folder


def _kinds(report) -> list[str]:
    return sorted(p.kind for p in report.errors)


def _tree_digest(root: Path) -> dict:
    return {
        str(p.relative_to(root)): (hashlib.sha1(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "tools/check_dataset.py", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_clean_dataset_summary(coco_files):
    data = copy.deepcopy(coco_files.data)
    data["annotations"][2]["bbox"] = [10, 10, 40, 40]  # one box of 1600 px^2 >= 32^2, two smaller
    coco_files.write(data)
    report = check_dataset(coco_files.ann_file, coco_files.img_dir)
    assert report.errors == [] and report.warnings == []
    s = report.summary
    assert s["images"] == 3 and s["annotations"] == 4 and s["crowd"] == 1
    assert s["per_class"] == {"ant (id 3)": 1, "moose (id 7)": 1, "zebra (id 10)": 1}
    assert s["images_without_annotations"] == 1
    assert s["tiny_box_share"] == pytest.approx(2 / 3)
    text = report.format()
    assert "images: 3 (1 without annotations)" in text and "0 error(s), 0 warning(s)" in text


BAD = {
    "zero_box": (lambda d: d["annotations"][0].update(bbox=[4, 6, 0, 10]), "bad_box", "id 11"),
    "negative_box": (lambda d: d["annotations"][1].update(bbox=[36, 22, -5, 3]), "bad_box", "id 12"),
    "unknown_category": (lambda d: d["annotations"][2].update(category_id=4), "unknown_category", "id 21"),
    "dotdot_path": (lambda d: d["images"][0].update(file_name="../../x.png"), "unsafe_path", "'../../x.png'"),
    "absolute_path": (lambda d: d["images"][0].update(file_name="/tmp/x.png"), "unsafe_path", "absolute"),
    "missing_file": (lambda d: d["images"][2].update(file_name="gone.png"), "missing_image", "'gone.png'"),
    "duplicate_image_id": (lambda d: d["images"][1].update(id=5), "duplicate_image_id", "id 5"),
    "duplicate_ann_id": (lambda d: d["annotations"][3].update(id=21), "duplicate_ann_id", "id 21"),
    "duplicate_category_id": (
        lambda d: d["categories"].append({"id": 7, "name": "elk"}),
        "duplicate_category_id",
        "id 7",
    ),
}


@pytest.mark.parametrize("name", list(BAD))
def test_each_bad_input_is_reported(coco_files, name):
    mutate, kind, where = BAD[name]
    data = copy.deepcopy(coco_files.data)
    mutate(data)
    coco_files.write(data)
    report = check_dataset(coco_files.ann_file, coco_files.img_dir)
    hits = [p for p in report.errors if p.kind == kind]
    assert len(hits) == 1, report.format()
    assert where in hits[0].message and str(coco_files.ann_file) in hits[0].message


def test_reports_every_problem_not_just_the_first(coco_files):
    data = copy.deepcopy(coco_files.data)
    for mutate, _, _ in BAD.values():
        mutate(data)
    coco_files.write(data)
    kinds = set(_kinds(check_dataset(coco_files.ann_file, coco_files.img_dir)))
    assert {
        "bad_box",
        "unknown_image",
        "unsafe_path",
        "duplicate_image_id",
        "duplicate_ann_id",
        "duplicate_category_id",
    } <= kinds


def test_unreadable_image_and_size_mismatch(coco_files):
    coco_files.image_path("a.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    cv2.imwrite(str(coco_files.image_path("c.png")), np.zeros((40, 64, 3), np.uint8))  # json says 64x64
    report = check_dataset(coco_files.ann_file, coco_files.img_dir)
    assert _kinds(report) == ["size_mismatch", "unreadable_image"]
    bad = {p.kind: p.message for p in report.errors}
    assert "a.png" in bad["unreadable_image"] and "id 1" in bad["unreadable_image"]
    assert "64x64" in bad["size_mismatch"] and "64x40" in bad["size_mismatch"]
    assert check_dataset(coco_files.ann_file, coco_files.img_dir, read_images=False).errors == []


def test_swapped_size_mentions_exif(coco_files):
    data = copy.deepcopy(coco_files.data)
    data["images"][0].update(width=48, height=64)
    data["annotations"] = data["annotations"][2:]
    coco_files.write(data)
    (msg,) = [p.message for p in check_dataset(coco_files.ann_file, coco_files.img_dir).errors]
    assert "EXIF" in msg


def test_unused_category_is_a_warning(coco_files):
    data = copy.deepcopy(coco_files.data)
    data["categories"].append({"id": 12, "name": "yak"})
    coco_files.write(data)
    report = check_dataset(coco_files.ann_file, coco_files.img_dir)
    assert report.errors == []
    (w,) = report.warnings
    assert w.kind == "unused_category" and "'yak'" in w.message


def test_invalid_json_and_missing_paths_raise(coco_files):
    coco_files.write(text="{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        check_dataset(coco_files.ann_file, coco_files.img_dir)
    with pytest.raises(DatasetError, match="not found"):
        check_dataset(coco_files.root / "x.json", coco_files.img_dir)
    with pytest.raises(DatasetError, match="image folder"):
        check_dataset(coco_files.ann_file, coco_files.root / "nodir")


def _tool_main(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    spec = importlib.util.spec_from_file_location("_check_dataset_tool", ROOT / "tools" / "check_dataset.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def test_main_in_process(coco_files, monkeypatch, capsys):
    main = _tool_main(monkeypatch)
    assert main([str(coco_files.ann_file), str(coco_files.img_dir)]) == 0
    out = capsys.readouterr().out
    assert "Summary of" in out and "ant (id 3): 1" in out
    assert main([str(coco_files.root / "missing.json"), str(coco_files.img_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.json" in err[0] and "not found" in err[0]


def test_cli_errors_exit_1_and_inputs_untouched(coco_files):
    data = copy.deepcopy(coco_files.data)
    data["annotations"][0]["bbox"] = [1, 1, 0, 0]
    data["images"][1]["file_name"] = "../b.png"
    coco_files.write(data)
    before = _tree_digest(coco_files.root)
    bad = _run_cli(coco_files.ann_file, coco_files.img_dir, "--no-images")
    assert bad.returncode == 1, bad.stderr
    assert "ERROR [bad_box]" in bad.stdout and "ERROR [unsafe_path]" in bad.stdout
    assert "2 error(s)" in bad.stdout and "Summary of" in bad.stdout
    assert _tree_digest(coco_files.root) == before


def test_cli_invalid_json_is_one_line_exit_2(coco_files):
    coco_files.write(text='{"images": [}')
    res = _run_cli(coco_files.ann_file, coco_files.img_dir)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("check_dataset: error:") and "ann.json" in lines[0]
    assert "not valid JSON" in lines[0]
