"""An analysis removes only what an earlier run recorded in its manifest, and never writes over a file of the
user's (detkit/analysis/outputs.py, the three modes' re-runs)."""

from __future__ import annotations

import json
import os

import pytest

from detkit.analysis.outputs import (
    MANIFEST,
    ForeignOutputError,
    recorded_outputs,
    recorded_run,
    remove_earlier_outputs,
)


def _files(folder) -> list[str]:
    """Every file below ``folder``, relative, '/'-separated, sorted."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_only_the_recorded_files_go(tmp_path):
    out = tmp_path / "out"
    (out / "worst").mkdir(parents=True)
    (out / "best").mkdir()
    for name in ("summary.json", "mine.json", "worst/01_x.jpg", "worst/12_cat_c3.jpg", "best/02_image7.jpg"):
        (out / name).write_text("old")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "01_keep.jpg").write_text("not in out")
    (out / "linked").symlink_to(elsewhere)
    (tmp_path / "outside.txt").write_text("outside")
    recorded = ["summary.json", "worst/01_x.jpg", "best/02_image7.jpg", "linked/01_keep.jpg", "../outside.txt"]
    (out / MANIFEST).write_text(json.dumps({"files": recorded + ["/etc/passwd"]}))
    removed = remove_earlier_outputs(out)
    assert sorted(p.relative_to(out).as_posix() for p in removed) == [
        MANIFEST,
        "best/02_image7.jpg",
        "summary.json",
        "worst/01_x.jpg",
    ]
    assert _files(out) == ["mine.json", "worst/12_cat_c3.jpg"]  # unrecorded names stay, whatever they look like
    assert not (out / "best").exists()  # left empty: the tool's own folder goes
    assert (elsewhere / "01_keep.jpg").is_file() and (tmp_path / "outside.txt").is_file()  # no link, no '..'


def test_a_folder_without_a_manifest_loses_nothing(tmp_path):
    """The reported data loss: a phone photo best/20240101_123456.jpg matched the drawings' old name pattern."""
    out = tmp_path / "A"
    (out / "best").mkdir(parents=True)
    (out / "best/20240101_123456.jpg").write_text("photo")
    (out / "summary.json").write_text("mine")
    (out / MANIFEST).write_text("not json")  # unreadable: no record either
    assert remove_earlier_outputs(out) == [] and recorded_outputs(out) == set()
    assert _files(out) == [MANIFEST, "best/20240101_123456.jpg", "summary.json"]
    with pytest.raises(ForeignOutputError, match=MANIFEST), recorded_run(out, ["per_class.csv"], "m"):
        raise AssertionError("a file named like the manifest that is none is the user's: refused")


def test_recorded_run_refuses_a_user_file_before_writing_anything(tmp_path):
    out = tmp_path / "out"
    (out / "worst").mkdir(parents=True)
    (out / "worst/01_image3.jpg").write_text("the user's")
    match = r"holds worst/01_image3.jpg, which this analysis would replace"
    with pytest.raises(ForeignOutputError, match=match), recorded_run(out, ["a.csv", "worst/01_image3.jpg"], "m"):
        raise AssertionError("the block must not run")
    assert _files(out) == ["worst/01_image3.jpg"]


def test_recorded_run_records_what_exists_even_when_the_run_fails(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), recorded_run(out, ["a.csv", "worst/01_x.jpg", "b.png"], "m") as folder:
        assert recorded_outputs(out) == {MANIFEST, "a.csv", "worst/01_x.jpg", "b.png"}  # recorded before writing
        (folder / "a.csv").write_text("a")
        raise RuntimeError("cut short")
    assert recorded_outputs(out) == {
        MANIFEST,
        "a.csv",
    }  # b.png was never written: a later file of that name is the user's
    with recorded_run(out, ["b.png"], "detection") as folder:
        (folder / "b.png").write_text("b")
    assert _files(out) == [MANIFEST, "b.png"]


def test_detection_rerun_clears_only_its_recorded_drawings(shapes, shapes_preds, tmp_path):
    """A run with --img-dir and the error breakdown, then one without: no stale errors.csv or drawings stay; the
    user's files (a photo in best/ named like a drawing, a note) stay through both runs."""
    from detkit.analysis import analyze

    gt_path, pred_path, _, _ = shapes_preds
    out = tmp_path / "a"
    (out / "best").mkdir(parents=True)
    (out / "best/20240101_123456.jpg").write_text("photo")
    analyze(gt_path, pred_path, out, img_dir=shapes["val_img_dir"], num_images=2, progress=False)
    assert len(list((out / "worst").iterdir())) == 2 and (out / "errors.csv").is_file()
    assert len(list((out / "best").iterdir())) == 3
    (out / "mine.txt").write_text("mine")
    analyze(gt_path, pred_path, out, num_images=2, tide=False, progress=False)
    tables = ["per_class.csv", "pr_curves.png", "confusion_matrix.png", "confusion_matrix.csv", "per_image.csv"]
    assert _files(out) == sorted([*tables, "summary.json", MANIFEST, "mine.txt", "best/20240101_123456.jpg"])
    assert recorded_outputs(out) == {*tables, "summary.json", MANIFEST}
    assert (out / "best/20240101_123456.jpg").read_text() == "photo"


def test_detection_refuses_a_table_of_the_users(shapes_preds, tmp_path):
    from detkit.analysis import analyze

    gt_path, pred_path, _, _ = shapes_preds
    out = tmp_path / "a"
    out.mkdir()
    (out / "per_class.csv").write_text("my table")
    with pytest.raises(ForeignOutputError, match="per_class.csv"):
        analyze(gt_path, pred_path, out, tide=False, progress=False)
    assert os.listdir(out) == ["per_class.csv"] and (out / "per_class.csv").read_text() == "my table"
