"""check_dataset (detkit.data.validate) and the tools/check_dataset.py command line."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from detkit.data.dataset_check import check_dataset
from detkit.data.datasets.coco import CocoDataset
from detkit.data.validate import DatasetError

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
    # one box of 1200 px^2 >= 32^2 (around its 30x20 mask), two smaller
    data["annotations"][2]["bbox"] = [15, 5, 40, 30]
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


def test_summary_gives_class_imbalance_and_image_sizes(coco_files):
    coco_files.edit(lambda d: d["annotations"].append({**d["annotations"][0], "id": 13}))  # ant: 2, others: 1
    text = check_dataset(coco_files.ann_file, coco_files.img_dir).format()
    assert "imbalance (largest / smallest class): 2.0x" in text
    assert "image sizes (h x w): 48x64: 1, 60x80: 1, 64x64: 1" in text
    coco_files.edit(lambda d: d.update(annotations=[]))
    assert "imbalance: undefined (no annotations)" in check_dataset(coco_files.ann_file, coco_files.img_dir).format()


BAD = {
    "zero_box": (lambda d: d["annotations"][0].update(bbox=[4, 6, 0, 10]), "empty_box", "id 11"),
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
    "null_category_id": (lambda d: d["categories"][0].update(id=None), "bad_id", "category #0 (id None): id is null"),
    "same_file_twice": (
        lambda d: d["images"][2].update(file_name="sub/../sub/b.png"),
        "duplicate_file",
        "image #2 (id 5): file_name 'sub/../sub/b.png' is the file of image #1 (id 2, file 'sub/b.png')",
    ),
}


@pytest.mark.parametrize("name", list(BAD))
def test_each_bad_input_is_reported(coco_files, name):
    mutate, kind, where = BAD[name]
    coco_files.edit(mutate)
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
        "empty_box",
        "unknown_image",
        "unsafe_path",
        "duplicate_image_id",
        "duplicate_ann_id",
        "duplicate_category_id",
    } <= kinds


def test_missing_annotations_key_is_an_error_not_a_set_of_negatives(coco_files):
    coco_files.edit(lambda d: d.pop("annotations"))  # as in COCO's image-info test files
    report = check_dataset(coco_files.ann_file, coco_files.img_dir)
    (error,) = report.errors
    assert error.kind == "missing_key" and "ann.json: top-level key 'annotations' is missing" in error.message
    assert "image-info test files" in error.message and report.warnings == []  # no unused_category per category


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
    with pytest.raises(SystemExit) as exit_info:
        main([str(coco_files.root / "missing.json"), str(coco_files.img_dir)])
    assert exit_info.value.code == 2
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
    assert "ERROR [empty_box]" in bad.stdout and "ERROR [unsafe_path]" in bad.stdout
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


# ----------------------------------------------------------------------------- instance segmentations


def _seg(ann_index: int, value) -> callable:
    return lambda d: d["annotations"][ann_index].update(segmentation=value)


def _rle(ann_index: int, **changes) -> callable:
    return lambda d: d["annotations"][ann_index]["segmentation"].update(**changes)


def _cut_counts(d: dict) -> None:
    d["annotations"][1]["segmentation"]["counts"] = d["annotations"][1]["segmentation"]["counts"][:-2]


# name -> (mutation, error kind the checker reports or None for clean data, annotation id)
SEG_CASES = {
    "clean": (lambda d: None, None, None),
    "polygon_slightly_outside": (_seg(0, [[-3, 6, 24, 6, 24, 16]]), None, None),  # within the 10% margin
    "two_points": (_seg(0, [[4, 6, 24, 6]]), "bad_polygon", 11),  # pycocotools would read it as a box
    "odd_coordinates": (_seg(0, [[4, 6, 24, 6, 24, 16, 14]]), "bad_polygon", 11),
    "empty_part": (_seg(0, [[]]), "bad_polygon", 11),
    "string_coordinates": (_seg(0, [["4", "6", "24", "6", "24", "16"]]), "bad_polygon", 11),
    "nan_coordinate": (_seg(0, [[4, 6, float("nan"), 6, 24, 16]]), "bad_polygon", 11),
    "far_coordinate": (_seg(0, [[4, 6, 1e5, 6, 24, 16]]), "polygon_outside", 11),
    "polygon_outside": (_seg(0, [[100, 100, 120, 100, 120, 120]]), "polygon_outside", 11),
    "empty_list": (_seg(0, []), "no_segmentation", 11),
    "missing": (lambda d: d["annotations"][0].pop("segmentation"), "no_segmentation", 11),
    "not_a_segmentation": (_seg(0, "polygon"), "bad_segmentation", 11),
    "rle_other_size": (_rle(1, size=[40, 64]), "rle_size", 12),
    "uncompressed_rle_other_size": (_rle(2, size=[61, 80]), "rle_size", 21),
    "uncompressed_counts_sum": (lambda d: d["annotations"][2]["segmentation"]["counts"].append(5), "bad_rle", 21),
    "negative_count": (lambda d: d["annotations"][2]["segmentation"]["counts"].insert(0, -1), "bad_rle", 21),
    "cut_compressed_counts": (_cut_counts, "bad_rle", 12),
    "garbage_compressed_counts": (_rle(1, counts="!!!"), "bad_rle", 12),
    "counts_a_number": (_rle(1, counts=5), "bad_rle", 12),
    "rle_without_counts": (lambda d: d["annotations"][1]["segmentation"].pop("counts"), "bad_rle", 12),
    "rle_size_one_number": (_rle(1, size=[48]), "bad_rle", 12),
    "crowd_polygon_odd": (_seg(3, [[1, 1, 5]]), "bad_polygon", 22),
}


def _load_all(files, on_error: str) -> list:
    ds = CocoDataset(files.ann_file, files.img_dir, with_masks=True, with_sem_seg=True, on_error=on_error)
    return [ds[i] for i in range(len(ds))]


@pytest.mark.parametrize("name", list(SEG_CASES))
def test_segmentation_checks_match_what_training_refuses(coco_files, name):
    mutate, kind, ann_id = SEG_CASES[name]
    coco_files.edit(mutate)
    report = check_dataset(coco_files.ann_file, coco_files.img_dir)
    if kind is None:
        assert report.errors == [], report.format()
        samples = _load_all(coco_files, "raise")  # what the checker passes, CocoDataset(with_masks=True) loads
        assert [len(s["masks"]) for s in samples] == [2, 1, 0]
        return
    (hit,) = report.errors
    assert hit.kind == kind and hit.ann_id == ann_id, report.format()
    assert str(coco_files.ann_file) in hit.message and f"(id {ann_id}," in hit.message
    assert "fix the" in hit.message or "add its polygon" in hit.message or "add the object's" in hit.message
    with pytest.raises(DatasetError, match=rf"id {ann_id}\b"):  # refused when built or when read
        _load_all(coco_files, "raise")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds_samples = _load_all(coco_files, "skip")  # and on_error: skip leaves that annotation's image out
    masks = sum(len(s["masks"]) for s in ds_samples if s is not None)  # None: a mask found bad when read
    assert masks == {11: 1, 12: 1, 21: 2, 22: 2}[ann_id]  # image 1 holds 11 and 12, image 2 21 and crowd 22


def test_normalised_polygon_is_an_empty_mask_warning(coco_files):
    coco_files.edit(_seg(0, [[0.1, 0.1, 0.5, 0.1, 0.5, 0.5]]))
    report = check_dataset(coco_files.ann_file, coco_files.img_dir)
    assert report.errors == []
    (w,) = [p for p in report.warnings if p.kind == "empty_mask"]
    assert "id 11" in w.message and "normalised" in w.message


def test_box_only_data_checks_segmentations_only_when_asked(coco_files):
    coco_files.edit(lambda d: [a.update(segmentation=[]) for a in d["annotations"]])
    auto = check_dataset(coco_files.ann_file, coco_files.img_dir)
    assert auto.errors == [] and "segmentations: not checked: no annotation has one" in auto.format()
    forced = check_dataset(coco_files.ann_file, coco_files.img_dir, masks=True)
    assert {p.kind for p in forced.errors} == {"no_segmentation"} and len(forced.errors) == 4
    assert "segmentations: every annotation's" in forced.format()


def test_summary_says_what_was_checked(coco_files):
    text = check_dataset(coco_files.ann_file, coco_files.img_dir).format()
    checked = text.split("Checked:")[1]
    for words in (
        "integer and unique ids",
        "decode, have the size the json gives",
        "inside the image (10% margin)",
        "1 polygon, 3 RLE entries",
    ):
        assert words in checked, text


def test_missing_area_is_reported_for_evaluation(coco_files):
    coco_files.edit(lambda d: d["annotations"][2].pop("area"))
    (hit,) = check_dataset(coco_files.ann_file, coco_files.img_dir).errors
    assert hit.kind == "bad_area" and "id 21" in hit.message and "evaluation" in hit.message


def test_progress_bar_only_when_asked(coco_files, capsys):
    check_dataset(coco_files.ann_file, coco_files.img_dir, progress=True)
    assert "check_dataset" in capsys.readouterr().err  # tqdm bar (ETA) on stderr
    check_dataset(coco_files.ann_file, coco_files.img_dir)
    assert capsys.readouterr().err == ""


# ----------------------------------------------------------------------------- mistakes, as a user runs the tool


def _drop_images(d):
    del d["images"]


def _string_ids(d):
    for im in d["images"]:
        im["id"] = str(im["id"])
    for a in d["annotations"]:
        a["image_id"] = str(a["image_id"])


def _windows_names(d):
    d["images"][0]["file_name"] = ".\\a.png"
    d["images"][1]["file_name"] = "sub\\b.png"


# name -> (mutation of the json or None, arguments (ann, img, root) -> argv, exit status, words in the output)
MISTAKES = {
    "folder_as_ann_file": (None, lambda a, i, r: [r, i], 2, ["is a folder (it holds ann.json)"]),
    "missing_ann_file": (None, lambda a, i, r: [r / "trian.json", i], 2, ["trian.json not found"]),
    "missing_img_dir": (None, lambda a, i, r: [a, r / "imgs"], 2, ["imgs not found"]),
    "file_as_img_dir": (None, lambda a, i, r: [a, a], 2, ["is a file, not a folder"]),
    "swapped_arguments": (None, lambda a, i, r: [i, a], 2, ["look swapped"]),
    "no_images_key": (_drop_images, None, 1, ["top-level key 'images' is missing", "1 error(s)"]),
    "empty_annotations": (lambda d: d.update(annotations=[]), None, 0, ["WARNING [no_annotations]"]),
    "duplicate_categories": (
        lambda d: d["categories"].append({"id": 7, "name": "elk"}),
        None,
        1,
        ["[duplicate_category_id]", "category #3 (id 7)"],
    ),
    "string_image_ids": (_string_ids, None, 1, ["image #0 (id '1'): id '1' is a str; COCO ids are integers (write 1)"]),
    "dotdot_file_name": (
        lambda d: d["images"][0].update(file_name="../a.png"),
        None,
        1,
        ["[unsafe_path]", "'../a.png' points outside img_dir"],
    ),
    "no_annotations_key": (
        lambda d: d.pop("annotations"),
        None,
        1,
        ["[missing_key]", "a test-info file without annotations cannot be trained or evaluated on", "1 error(s), 0 w"],
    ),
    "windows_file_names": (_windows_names, None, 0, ["0 error(s), 0 warning(s)"]),
    "same_file_twice": (
        lambda d: d["images"][0].update(file_name="./sub/b.png"),
        None,
        1,
        ["ERROR [duplicate_file]", "image #1 (id 2): file_name 'sub/b.png' is the file of image #0 (id 1"],
    ),
    "odd_polygon": (_seg(0, [[4, 6, 24, 6, 24, 16, 14]]), None, 1, ["[bad_polygon]", "(id 11, image id 1)"]),
    "rle_other_size": (_rle(1, size=[40, 64]), None, 1, ["[rle_size]", "(id 12, image id 1)"]),
}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_cli_mistakes_are_named_without_traceback(coco_files, name):
    mutate, argv, status, words = MISTAKES[name]
    if mutate is not None:
        coco_files.edit(mutate)
    args = (argv or (lambda a, i, r: [a, i]))(coco_files.ann_file, coco_files.img_dir, coco_files.root)
    before = _tree_digest(coco_files.root)
    res = _run_cli(*args)
    out = res.stdout + res.stderr
    assert res.returncode == status, out
    assert "Traceback" not in out
    for w in words:
        assert w in out, out
    if status == 2:
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("check_dataset: error:"), res.stderr
    else:
        assert "\r" not in res.stderr and "it/s" not in res.stderr  # no progress frames when not a terminal
    assert _tree_digest(coco_files.root) == before
