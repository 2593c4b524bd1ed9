"""Analysis of a classifier's predictions.csv against class folders: metrics, confusion, most confused pairs and
the per-image ranking equal a hand count on a made-up set; bad files are named."""

from __future__ import annotations

import csv
import json
import warnings

import cv2
import numpy as np
import pytest

from detkit.analysis.classification import analyze_classification, confused_pairs, read_predictions_csv
from detkit.evaluation.checks import CategoryMismatchWarning

# (class folder, file, top-3 predicted (name, probability)) of 7 made-up images
ROWS = [
    ("cat", "c1.png", [("cat", 0.9), ("dog", 0.08), ("fox", 0.02)]),  # right
    ("cat", "c2.png", [("dog", 0.6), ("cat", 0.3), ("fox", 0.1)]),  # wrong
    ("cat", "c3.png", [("dog", 0.95), ("fox", 0.03), ("cat", 0.02)]),  # wrong, most confident
    ("dog", "d1.png", [("dog", 0.7), ("cat", 0.2), ("fox", 0.1)]),  # right
    ("dog", "d2.png", [("fox", 0.5), ("dog", 0.4), ("cat", 0.1)]),  # wrong
    ("fox", "f1.png", [("fox", 0.8), ("dog", 0.15), ("cat", 0.05)]),  # right
    ("fox", "f2.png", [("fox", 0.6), ("cat", 0.3), ("dog", 0.1)]),  # right
]


def _write_csv(path, rows, k: int = 3, prefix: str = "") -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "frame", *(c for i in range(1, k + 1) for c in (f"label_{i}", f"score_{i}"))])
        for cls, name, top in rows:
            w.writerow([f"{prefix}{cls}/{name}", "", *(v for n, s in top[:k] for v in (n, s))])


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "val"
    for cls, name, _ in ROWS:
        (root / cls).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / cls / name), np.full((20, 24, 3), 100, np.uint8))
    return root


def test_metrics_confusion_and_pairs_equal_a_hand_count(folder, tmp_path):
    preds = tmp_path / "predictions.csv"
    _write_csv(preds, ROWS, prefix="/elsewhere/val/")  # infer ran on another copy: matched by path suffix
    out = analyze_classification(folder, preds, tmp_path / "out", num_images=2)
    m = out["metrics"]
    assert m["cls/top1"] == pytest.approx(4 / 7)
    assert m["cls/mean_acc"] == pytest.approx((1 / 3 + 1 / 2 + 1) / 3)
    assert out["topk"] == 3 and m["cls/top5"] == 1.0  # top-min(5, C): every truth is in the top 3
    assert out["evaluator"].confusion.tolist() == [[1, 2, 0], [0, 1, 1], [0, 0, 2]]
    assert out["pairs"][0] == {"true": "cat", "predicted": "dog", "images": 2, "share_of_true": pytest.approx(2 / 3)}
    assert [(p["true"], p["predicted"]) for p in out["pairs"]] == [("cat", "dog"), ("dog", "fox")]
    ranked = [(r["true"], r["predicted"], r["score"], r["true_score"]) for r in out["per_image"]]
    assert ranked[:3] == [("cat", "dog", 0.95, 0.02), ("cat", "dog", 0.6, 0.3), ("dog", "fox", 0.5, 0.4)]
    assert sorted(p.name for p in (tmp_path / "out" / "worst").iterdir()) == ["01_cat_c3.jpg", "02_cat_c2.jpg"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["images"] == 7 and summary["metrics"]["cls/top1"] == pytest.approx(4 / 7)


def test_a_short_top_k_leaves_top5_undefined_and_gives_top_k(folder, tmp_path):
    preds = tmp_path / "p.csv"
    _write_csv(preds, ROWS, k=1)
    m = analyze_classification(folder, preds, tmp_path / "out")["metrics"]
    assert m["cls/top1"] == pytest.approx(4 / 7) and np.isnan(m["cls/top5"])  # one label per row: top-3 unknown
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["metrics"]["cls/top5"] is None  # undefined: null in strict JSON


def test_bad_inputs_are_named(folder, tmp_path):
    other = tmp_path / "other.csv"
    _write_csv(other, [("cat", "zzz.png", [("cat", 1.0)])], k=1)
    with pytest.raises(ValueError, match=r"1 predicted file\(s\) are not images of .*val .*zzz\.png"):
        analyze_classification(folder, other, tmp_path / "o1")
    detections = tmp_path / "det.csv"
    detections.write_text("image_id,bbox\n1,2\n")
    with pytest.raises(ValueError, match=r"det\.csv: not a classifier's predictions\.csv"):
        read_predictions_csv(detections)
    bad = tmp_path / "bad.csv"
    bad.write_text("file,frame,label_1,score_1\ncat/c1.png,,cat,high\n")
    with pytest.raises(ValueError, match=r"bad\.csv line 2: a score is not a number"):
        read_predictions_csv(bad)


def test_classes_the_ground_truth_lacks_and_partial_coverage_warn(folder, tmp_path):
    preds = tmp_path / "p.csv"
    _write_csv(preds, [("cat", "c1.png", [("wolf", 0.9), ("cat", 0.1)])], k=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = analyze_classification(folder, preds, tmp_path / "out")
    messages = " ".join(str(w.message) for w in caught if issubclass(w.category, CategoryMismatchWarning))
    assert "name 1 class(es) the ground truth lacks (wolf)" in messages and "cover 1 of the 7 images" in messages
    assert out["evaluator"].class_names == ["cat", "dog", "fox", "wolf"] and out["metrics"]["cls/top1"] == 0.0


def test_confused_pairs_orders_the_off_diagonal_counts():
    cm = np.array([[5, 1, 3], [0, 4, 0], [2, 0, 1]])
    pairs = confused_pairs(cm, ["a", "b", "c"], top=2)
    assert [(p["true"], p["predicted"], p["images"]) for p in pairs] == [("a", "c", 3), ("c", "a", 2)]
    assert pairs[1]["share_of_true"] == pytest.approx(2 / 3)


def test_predictions_of_another_split_with_the_same_names_warn(folder, tmp_path):
    train = tmp_path / "train"  # the same class folders and file names, other images
    for cls, name, _ in ROWS:
        (train / cls).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(train / cls / name), np.full((20, 24, 3), 7, np.uint8))
    preds = tmp_path / "p.csv"
    _write_csv(preds, ROWS, prefix=f"{train}/")
    with pytest.warns(CategoryMismatchWarning, match=r"7 predicted file\(s\) were matched .* by name but are other"):
        analyze_classification(folder, preds, tmp_path / "out")
    _write_csv(preds, ROWS, prefix=f"{folder}/")  # made on these very images: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", CategoryMismatchWarning)
        analyze_classification(folder, preds, tmp_path / "out2")


def test_a_rerun_removes_its_earlier_drawings(folder, tmp_path):
    preds = tmp_path / "predictions.csv"
    _write_csv(preds, ROWS)
    out = tmp_path / "out"
    analyze_classification(folder, preds, out, num_images=3)
    assert sorted(p.name for p in (out / "worst").iterdir()) == ["01_cat_c3.jpg", "02_cat_c2.jpg", "03_dog_d2.jpg"]
    (out / "worst" / "mine.jpg").write_bytes(b"mine")
    (out / "worst" / "04_img.jpg").write_bytes(b"mine")  # named like a drawing, but no run recorded it
    analyze_classification(folder, preds, out, num_images=1)
    assert sorted(p.name for p in (out / "worst").iterdir()) == ["01_cat_c3.jpg", "04_img.jpg", "mine.jpg"]
    assert (out / "worst" / "04_img.jpg").read_bytes() == b"mine"


def test_a_drawing_name_taken_by_a_user_file_is_refused_before_writing(folder, tmp_path):
    from detkit.analysis.outputs import ForeignOutputError

    preds = tmp_path / "predictions.csv"
    _write_csv(preds, ROWS)
    out = tmp_path / "out"
    (out / "worst").mkdir(parents=True)
    (out / "worst" / "01_cat_c3.jpg").write_bytes(b"mine")
    with pytest.raises(ForeignOutputError, match="worst/01_cat_c3.jpg"):
        analyze_classification(folder, preds, out, num_images=1)
    assert [p.name for p in out.rglob("*")] == ["worst", "01_cat_c3.jpg"]
    assert (out / "worst" / "01_cat_c3.jpg").read_bytes() == b"mine"
