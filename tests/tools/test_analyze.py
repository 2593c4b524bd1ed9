"""tools/analyze.py: outputs, printed tables, infer-style predictions matched by file name, one-line errors."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests" / "analysis"))
from fake_coco import perturb  # noqa: E402

_spec = importlib.util.spec_from_file_location("detkit_tool_analyze", ROOT / "tools" / "analyze.py")
analyze_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(analyze_tool)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from detkit.data.synthetic import make_shapes

    root = tmp_path_factory.mktemp("shapes")
    paths = make_shapes(root, num_train=0, num_val=6, size=(64, 64), seed=5, empty_fraction=0.0)
    gt = json.loads(paths["val_ann_file"].read_text())
    preds = perturb(gt, seed=2)
    (root / "predictions.json").write_text(json.dumps(preds))
    return paths, gt, preds, root / "predictions.json"


def test_analyze_tool(data, tmp_path, capsys):
    paths, gt, preds, pred_path = data
    out = tmp_path / "out"
    rc = analyze_tool.main(
        [
            str(paths["val_ann_file"]),
            str(pred_path),
            "--out-dir",
            str(out),
            "--img-dir",
            str(paths["val_img_dir"]),
            "--num-images",
            "2",
            "--score-thr",
            "0.2",
        ]
    )
    printed = capsys.readouterr().out
    assert rc == 0
    from detkit.evaluation import coco_metrics

    m = coco_metrics(paths["val_ann_file"], preds)
    assert f"AP {m['bbox/AP']:.3f}" in printed and "circle" in printed and "localization" in printed
    assert "(AP in 0..1" in printed and "AP50 gained if fixed (0..1)" in printed  # tables say their units
    assert f"{len(gt['annotations'])} ground truths" in printed
    for name in (
        "per_class.csv",
        "pr_curves.png",
        "confusion_matrix.png",
        "confusion_matrix.csv",
        "errors.png",
        "errors.csv",
        "per_image.csv",
        "summary.json",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 50, name
    assert len(list((out / "worst").glob("*.jpg"))) == 2 and len(list((out / "best").glob("*.jpg"))) == 2
    assert json.loads((out / "summary.json").read_text())["confusion"]["score_thr"] == 0.2


def test_infer_style_predictions_match_by_file_name(data, tmp_path, capsys):
    """tools/infer.py numbers images by input order and records file_name: they are matched by name."""
    paths, gt, preds, _ = data
    names = {im["id"]: im["file_name"] for im in gt["images"]}
    order = {im_id: k for k, im_id in enumerate(sorted(names))}
    infer_like = [
        {**p, "image_id": order[p["image_id"]], "file_name": str(paths["val_img_dir"] / names[p["image_id"]])}
        for p in preds
    ]
    path = tmp_path / "infer.json"
    path.write_text(json.dumps(infer_like))
    args = [str(paths["val_ann_file"]), str(path), "--out-dir", str(tmp_path / "o"), "--no-tide"]
    assert analyze_tool.main(args) == 0
    a = json.loads((tmp_path / "o" / "summary.json").read_text())["metrics"]
    from detkit.evaluation import coco_metrics

    assert a == coco_metrics(paths["val_ann_file"], preds)
    capsys.readouterr()


@pytest.mark.parametrize("case", ["missing", "bad_json", "unknown_image", "unknown_file"])
def test_bad_input_is_one_line_error(data, tmp_path, capsys, case):
    paths, _, preds, _pred_path = data
    bad = tmp_path / "bad.json"
    if case == "missing":
        bad = tmp_path / "nope.json"
    elif case == "bad_json":
        bad.write_text("[{")
    elif case == "unknown_image":
        bad.write_text(json.dumps([{**preds[0], "image_id": 999}]))
    else:
        bad.write_text(json.dumps([{**preds[0], "file_name": "elsewhere/x.png"}]))
    rc = analyze_tool.main([str(paths["val_ann_file"]), str(bad), "--out-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("analyze: error: ") and err.count("\n") == 1
    assert {
        "missing": "not found",
        "bad_json": "not valid JSON",
        "unknown_image": "(999)",
        "unknown_file": "elsewhere/x.png",
    }[case] in err


def test_an_img_dir_without_the_images_and_a_threshold_above_every_score(data, tmp_path, capsys):
    """--img-dir of another folder: one line (it warned once per image and drew nothing); a --score-thr that no
    prediction reaches: a warning with the best score (the confusion matrix was all misses, with no word why)."""
    paths, _, preds, pred_path = data
    other = tmp_path / "other"
    other.mkdir()
    args = [str(paths["val_ann_file"]), str(pred_path), "--out-dir", str(tmp_path / "o"), "--no-tide"]
    assert analyze_tool.main([*args, "--img-dir", str(other)]) == 2
    err = capsys.readouterr().err
    assert "--img-dir" in err and "holds none of the 6 images" in err and err.count("\n") == 1
    low = tmp_path / "low.json"
    low.write_text(json.dumps([{**p, "score": 0.05} for p in preds]))
    args[1] = str(low)
    assert analyze_tool.main([*args, "--score-thr", "0.3"]) == 0
    err = capsys.readouterr().err
    assert "no prediction reaches --score-thr 0.3 (the best score is 0.050)" in err


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("analyze: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_photo_in_best_survives_and_a_users_table_is_refused(data, tmp_path, capsys):
    """The reported data loss: A/best/20240101_123456.jpg (a phone photo's name) was deleted by a run into A."""
    paths, _, _, pred_path = data
    out = tmp_path / "A"
    (out / "best").mkdir(parents=True)
    (out / "best" / "20240101_123456.jpg").write_bytes(b"photo")
    args = [str(paths["val_ann_file"]), str(pred_path), "--out-dir", str(out), "--no-tide", "--num-images", "1"]
    assert analyze_tool.main([*args, "--img-dir", str(paths["val_img_dir"])]) == 0
    assert (out / "best" / "20240101_123456.jpg").read_bytes() == b"photo"
    assert len(list((out / "best").iterdir())) == 2
    assert analyze_tool.main(args) == 0  # the re-run removes its drawings, not the photo
    assert sorted((out / "best").iterdir()) == [out / "best" / "20240101_123456.jpg"]
    assert not (out / "worst").exists()
    capsys.readouterr()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "summary.json").write_text("my notes")
    assert analyze_tool.main([*args[:3], str(mine)]) == 2
    err = _one_line_error(capsys)
    assert "holds summary.json, which this analysis would replace" in err
    assert _tree(mine) == {"summary.json": b"my notes"}


@pytest.fixture
def class_folders(tmp_path):
    """data/best/01_img.jpg ... and data/worst/01_img.jpg ...: class folders named like analyze's drawing folders,
    and a classifier's predictions.csv of them (all wrong)."""
    import cv2
    import numpy as np

    root = tmp_path / "data"
    rows = ["file,frame,label_1,score_1"]
    for cls, other in (("best", "worst"), ("worst", "best")):
        (root / cls).mkdir(parents=True)
        for k in (1, 2):
            path = root / cls / f"{k:02d}_img.jpg"
            cv2.imwrite(str(path), np.full((16, 16, 3), 40 * k, np.uint8))
            rows.append(f"{path},,{other},0.9")
    preds = tmp_path / "predictions.csv"
    preds.write_text("\n".join(rows) + "\n")
    return root, preds


def test_classifier_out_dir_inside_img_dir_is_refused(class_folders, tmp_path, capsys):
    """The reported data loss: --out-dir data (the IMG_DIR) deleted data/worst/*.jpg, then crashed."""
    root, preds = class_folders
    before = _tree(root)
    assert analyze_tool.main([str(root), str(preds), "--out-dir", str(root)]) == 2
    assert "is inside the input folder" in _one_line_error(capsys)
    assert analyze_tool.main([str(root), str(preds), "--out-dir", str(root / "worst" / "ana")]) == 2
    _one_line_error(capsys)
    assert analyze_tool.main([str(root / "worst"), str(preds), "--out-dir", str(root)]) == 2  # IMG_DIR = OUT/worst
    assert "drawing folder" in _one_line_error(capsys)
    assert _tree(root) == before


def test_classifier_rerun_clears_only_its_recorded_drawings(class_folders, tmp_path, capsys):
    root, preds = class_folders
    out = tmp_path / "ana"
    (out / "worst").mkdir(parents=True)
    (out / "worst" / "09_img.jpg").write_bytes(b"mine")
    assert analyze_tool.main([str(root), str(preds), "--out-dir", str(out), "--num-images", "3"]) == 0
    drawn = sorted(p.name for p in (out / "worst").iterdir())
    assert len(drawn) == 4 and "09_img.jpg" in drawn
    assert analyze_tool.main([str(root), str(preds), "--out-dir", str(out), "--num-images", "1"]) == 0
    assert sorted(p.name for p in (out / "worst").iterdir()) == ["01_best_01_img.jpg", "09_img.jpg"]
    assert (out / "worst" / "09_img.jpg").read_bytes() == b"mine"
    capsys.readouterr()
