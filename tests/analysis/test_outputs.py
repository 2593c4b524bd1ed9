"""remove_earlier_outputs: an analysis clears only its own earlier outputs (fixed names, NN_*.jpg drawings)."""

from __future__ import annotations

import os

from detkit.analysis.outputs import remove_earlier_outputs


def test_only_the_named_files_and_numbered_drawings_go(tmp_path):
    out = tmp_path / "out"
    (out / "worst").mkdir(parents=True)
    (out / "best").mkdir()
    for name in ("summary.json", "mine.json", "worst/01_x.jpg", "worst/12_cat_c3.jpg", "worst/x.jpg"):
        (out / name).write_text("old")
    (out / "worst/01_x.png").write_text("a png of the user's")
    (out / "best/02_image7.jpg").write_text("old")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "01_keep.jpg").write_text("not in out")
    (out / "linked").symlink_to(elsewhere)
    removed = remove_earlier_outputs(out, ["summary.json", "errors.csv"], ["worst", "best", "linked", "absent"])
    assert sorted(p.relative_to(out).as_posix() for p in removed) == [
        "best/02_image7.jpg",
        "summary.json",
        "worst/01_x.jpg",
        "worst/12_cat_c3.jpg",
    ]
    assert sorted(os.listdir(out / "worst")) == ["01_x.png", "x.jpg"]  # the user's files stay
    assert not (out / "best").exists()  # left empty: the tool's own folder goes
    assert (elsewhere / "01_keep.jpg").is_file() and (out / "mine.json").is_file()  # a linked folder is not entered


def test_detection_rerun_leaves_no_earlier_output(shapes, shapes_preds, tmp_path):
    """A run with --img-dir and the error breakdown, then one without: no stale errors.csv or drawings stay."""
    from detkit.analysis import analyze

    gt_path, pred_path, _, _ = shapes_preds
    out = tmp_path / "a"
    analyze(gt_path, pred_path, out, img_dir=shapes["val_img_dir"], num_images=2, progress=False)
    assert len(list((out / "worst").iterdir())) == 2 and (out / "errors.csv").is_file()
    (out / "mine.txt").write_text("mine")
    analyze(gt_path, pred_path, out, num_images=2, tide=False, progress=False)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["per_class.csv", "pr_curves.png", "confusion_matrix.png", "confusion_matrix.csv", "per_image.csv"]
        + ["summary.json", "mine.txt"]
    )
