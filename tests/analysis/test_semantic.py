"""Analysis of a semantic model's label maps against a label-map folder: the numbers equal a hand count on two
made-up 2x4 maps, the outputs hold them, ground truth is read as SegFolderDataset reads it, bad inputs are named."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from detkit.analysis.semantic import analyze_semantic, semantic_confusion_figure
from detkit.analysis.semantic_draw import ERROR_RGB, draw_comparison
from detkit.analysis.semantic_inputs import LabelReading, reading_from_options

NAMES = ["bg", "a", "b"]
GT_X = np.array([[0, 0, 1, 1], [0, 255, 2, 2]], np.uint8)  # one ignored pixel
PRED_X = np.array([[0, 1, 1, 1], [0, 0, 2, 0]], np.uint8)
GT_Y = np.zeros((2, 4), np.uint8)  # predicted perfectly
# summed confusion (rows truth, columns prediction), the ignored pixel left out: x gives [[2,1,0],[0,2,0],[1,0,1]]
CONFUSION = [[10, 1, 0], [0, 2, 0], [1, 0, 1]]
MIOU = (10 / 12 + 2 / 3 + 1 / 2) / 3
MIOU_X = (2 / 4 + 2 / 3 + 1 / 2) / 3


def write_case(root: Path, maps: dict[str, tuple[np.ndarray, np.ndarray]], gt_values=None) -> tuple[Path, Path]:
    """``root/img/<name>.png`` images, ``root/gt/<name>.png`` ground truth (``gt_values(gt)`` as stored) and
    ``root/pred`` as tools/infer.py writes it (``<name>_labels.png`` + images.json). Returns (gt dir, pred dir)."""
    for sub in ("img", "gt", "pred"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    records = []
    for k, (name, (gt, pred)) in enumerate(maps.items(), start=1):
        image = root / "img" / f"{name}.png"
        cv2.imwrite(str(image), np.full((*gt.shape, 3), 60 * k, np.uint8))
        cv2.imwrite(str(root / "gt" / f"{name}.png"), gt if gt_values is None else gt_values(gt))
        cv2.imwrite(str(root / "pred" / f"{name}_labels.png"), pred)
        records.append({"id": k, "file_name": str(image), "height": 2, "width": 4, "labels": f"{name}_labels.png"})
    (root / "pred" / "images.json").write_text(json.dumps(records))
    return root / "gt", root / "pred"


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


@pytest.fixture
def case(tmp_path):
    return write_case(tmp_path, {"x": (GT_X, PRED_X), "y": (GT_Y, GT_Y)})


def test_numbers_equal_a_hand_count_and_the_outputs_hold_them(case, tmp_path):
    gt_dir, pred_dir = case
    out = analyze_semantic(gt_dir, pred_dir, tmp_path / "out", LabelReading(NAMES, source="test"), num_images=2)
    m = out["metrics"]
    assert m["sem/mIoU"] == pytest.approx(MIOU) and m["sem/aAcc"] == pytest.approx(13 / 15)
    assert m["sem/mAcc"] == pytest.approx((10 / 11 + 1 + 1 / 2) / 3)
    assert out["evaluator"].confusion.tolist() == CONFUSION  # 15 pixels: the ignored one is in no cell
    assert [s.pair.image.endswith(n) for s, n in zip(out["scores"], ("x.png", "y.png"))] == [True, True]
    assert out["scores"][0].mIoU == pytest.approx(MIOU_X) and out["scores"][1].mIoU == 1.0
    folder = tmp_path / "out"
    per_class = _rows(folder / "per_class.csv")
    assert per_class[0] == ["class", "label", "IoU (0-1)", "Acc (0-1)", "gt_pixels", "pred_pixels"]
    assert [r[0] for r in per_class[1:]] == NAMES and float(per_class[2][2]) == pytest.approx(2 / 3)
    assert [int(r[4]) for r in per_class[1:]] == [11, 2, 2] and [int(r[5]) for r in per_class[1:]] == [11, 3, 1]
    counts = _rows(folder / "confusion_matrix.csv")
    assert [[int(v) for v in r[1:]] for r in counts[1:]] == CONFUSION and counts[1][0] == "gt:bg"
    shares = np.array([[float(v) for v in r[1:]] for r in _rows(folder / "confusion_matrix_norm.csv")[1:]])
    assert np.allclose(shares.sum(1), 1) and shares[2].tolist() == [0.5, 0.0, 0.5]  # each row sums to 1
    per_image = _rows(folder / "per_image.csv")
    assert per_image[1][0].endswith("x.png") and float(per_image[1][3]) == pytest.approx(MIOU_X, abs=1e-6)
    assert [p.name for p in (folder / "worst").iterdir()] == ["01_x.jpg"]  # y has no wrong pixel: never drawn
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["metrics"] == pytest.approx(m) and summary["images"] == 2 and summary["num_classes"] == 3
    assert summary["per_class"][1] == {
        "name": "a",
        "label": 1,
        "IoU": pytest.approx(2 / 3),
        "Acc": 1.0,
        "num_pixels": 2,
    }


def test_unnamed_classes_end_at_the_largest_value_and_score_the_same(case, tmp_path):
    out = analyze_semantic(*case, tmp_path / "out", LabelReading())
    assert out["evaluator"].class_names == ["0", "1", "2"] and out["evaluator"].confusion.tolist() == CONFUSION
    assert out["metrics"]["sem/mIoU"] == pytest.approx(MIOU)
    wide = write_case(tmp_path / "wide", {"x": (np.full((2, 4), 300, np.uint16), PRED_X)})  # a 16-bit map
    with pytest.raises(ValueError, match=r"x\.png has value\(s\) 300: without class names values must be 0\.\.255"):
        analyze_semantic(*wide, tmp_path / "o2", LabelReading())


def test_ground_truth_is_read_as_the_dataset_reads_it(tmp_path):
    """Maps stored ADE20K-style (0 = unlabelled, class k as k + 1) score as the config's reduce_zero_label says."""
    stored = write_case(tmp_path, {"x": (GT_X, PRED_X), "y": (GT_Y, GT_Y)}, lambda g: np.where(g == 255, 0, g + 1))
    cfg = {"data": {"val": {"type": "SegFolderDataset", "classes": NAMES, "reduce_zero_label": True}}}
    reading = reading_from_options(config=cfg)
    assert reading.reduce_zero_label and reading.class_names == NAMES and reading.source.startswith("--config")
    out = analyze_semantic(*stored, tmp_path / "out", reading)
    assert out["evaluator"].confusion.tolist() == CONFUSION
    with pytest.raises(ValueError, match=r"ground-truth map .*x\.png has value\(s\) 3 but the class list gives 3"):
        analyze_semantic(*stored, tmp_path / "out2", LabelReading(NAMES))  # read as is: 3 is no class
    with pytest.raises(ValueError, match=r"look stored as ADE20K's .*--config, its data.val with reduce_zero_label"):
        analyze_semantic(*stored, tmp_path / "out2", LabelReading(NAMES))  # values up to C: the hint names the fix
    with pytest.raises(ValueError, match="data.val is CocoDataset, not a SegFolderDataset"):
        reading_from_options(config={"data": {"val": {"type": "CocoDataset"}}})


def test_background_and_ignore_index_options(case, tmp_path):
    names_file = tmp_path / "fg.txt"
    names_file.write_text("a\nb\n")
    reading = reading_from_options(classes=str(names_file), background="bg")
    assert reading.class_names == NAMES and reading.source == f"--classes {names_file} --background bg"
    assert analyze_semantic(*case, tmp_path / "o1", reading)["evaluator"].confusion.tolist() == CONFUSION
    zero = reading_from_options(classes=str(names_file), background="bg", ignore_index=0)
    with pytest.raises(ValueError, match=r"value\(s\) 255 but .* values must be 0..2 or 0 \(ignore\)"):
        analyze_semantic(*case, tmp_path / "o2", zero)  # 255 is no longer the ignore value
    other = write_case(tmp_path / "zero", {"x": (np.where(GT_X == 255, 0, GT_X), PRED_X), "y": (GT_Y, GT_Y)})
    out = analyze_semantic(*other, tmp_path / "o3", zero)
    assert out["evaluator"].confusion.tolist() == [[0, 0, 0], [0, 2, 0], [1, 0, 1]]  # every 0 pixel ignored


@pytest.mark.parametrize(
    ("maps", "match"),
    [
        (
            {"x": (GT_X, np.zeros((2, 5), np.uint8))},
            r"prediction .*x_labels\.png is 5x2 but its ground-truth map .*is 4x2",
        ),
        ({"x": (GT_X, np.full((2, 4), 5, np.uint8))}, r"prediction .*x_labels\.png has value\(s\) 5 but"),
        (
            {"x": (np.full((2, 4), 7, np.uint8), PRED_X)},
            r"ground-truth map .*x\.png has value\(s\) 7 but .*check --classes / --background, or give the model's",
        ),
    ],
    ids=["size", "pred-value", "gt-value"],
)
def test_bad_maps_are_named(tmp_path, maps, match):
    with pytest.raises(ValueError, match=match):
        analyze_semantic(*write_case(tmp_path, maps), tmp_path / "out", LabelReading(NAMES))


def test_missing_and_extra_files_are_counted_and_named(case, tmp_path):
    gt_dir, pred_dir = case
    cv2.imwrite(str(gt_dir / "w.png"), GT_Y)  # a ground-truth map nobody predicted
    with pytest.raises(ValueError, match=r"1 of the 3 ground-truth map\(s\) .* have no prediction .*\(w\.png\)"):
        analyze_semantic(gt_dir, pred_dir, tmp_path / "o1", LabelReading(NAMES))
    split = tmp_path / "val.txt"
    split.write_text("x\ny\n")  # --split-file: only the predicted images' maps
    out = analyze_semantic(gt_dir, pred_dir, tmp_path / "o2", LabelReading(NAMES, split_file=str(split)))
    assert out["evaluator"].confusion.tolist() == CONFUSION
    (gt_dir / "y.png").unlink()
    (gt_dir / "w.png").unlink()
    with pytest.raises(ValueError, match=r"1 predicted image\(s\) have no ground-truth map .*y\.png"):
        analyze_semantic(gt_dir, pred_dir, tmp_path / "o3", LabelReading(NAMES))
    (pred_dir / "x_labels.png").unlink()
    with pytest.raises(ValueError, match=r"1 of the 2 label maps that .*images\.json lists are missing \(x_labels"):
        analyze_semantic(gt_dir, pred_dir, tmp_path / "o4", LabelReading(NAMES))


def test_a_folder_that_is_not_a_semantic_infer_output_is_named(case, tmp_path):
    gt_dir, pred_dir = case
    (pred_dir.with_name("pred_of_x")).mkdir()
    (pred_dir / "images.json").rename(pred_dir.with_name("pred_of_x") / "images.json")
    for name in ("x_labels.png", "y_labels.png"):
        (pred_dir / name).rename(pred_dir.with_name("pred_of_x") / name)
    with pytest.raises(ValueError, match="holds no images.json: it is not an output folder of tools/infer.py"):
        analyze_semantic(gt_dir, pred_dir, tmp_path / "o1", LabelReading(NAMES))
    (pred_dir / "images.json").write_text(json.dumps([{"id": 1, "file_name": "a.jpg", "drawn": "a.jpg"}]))
    (pred_dir / "predictions.json").write_text("[]")
    with pytest.raises(ValueError, match=r"a detector's predictions \(predictions.json.*GT_JSON .*predictions.json"):
        analyze_semantic(gt_dir, pred_dir, tmp_path / "o2", LabelReading(NAMES))
    with pytest.raises(ValueError, match="holds the images that were predicted"):  # the image folder given as GT
        analyze_semantic(tmp_path / "img", pred_dir.with_name("pred_of_x"), tmp_path / "o3")


def test_drawing_marks_the_wrong_pixels_and_the_figure_shows_row_shares():
    image = np.full((2, 4, 3), 100, np.uint8)
    drawn = draw_comparison(image, GT_X, PRED_X, NAMES, miou=0.5)
    assert drawn.shape == (192 + 18, 3 * 384 + 8, 3)  # enlarged to a 192 px short side, three panels, titles
    errors = drawn[18:, 2 * 384 + 8 :]
    red = np.all(errors == ERROR_RGB, axis=-1)
    assert red.sum() == 2 * 96 * 96  # 2 wrong pixels of the 2x4 map, each 96x96 after enlarging; not the ignored
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig = semantic_confusion_figure(np.array(CONFUSION), NAMES)
    shown = fig.axes[0].images[0].get_array()
    assert np.allclose(shown[0], [10 / 11, 1 / 11, 0]) and "ignore left out" in fig.axes[0].get_title()


def test_a_split_file_scores_its_stems_and_leaves_the_other_predictions_out(case, tmp_path):
    """Pascal VOC: infer ran on all of JPEGImages, SegmentationClass holds both splits, val.txt picks the scored."""
    from detkit.analysis.semantic import format_report

    gt_dir, pred_dir = case
    cv2.imwrite(str(gt_dir / "z.png"), GT_Y)  # a map of the other split, predicted too
    cv2.imwrite(str(pred_dir / "z_labels.png"), PRED_X)
    cv2.imwrite(str(pred_dir / "n_labels.png"), PRED_X)  # a predicted image without any map
    records = json.loads((pred_dir / "images.json").read_text())
    for k, name in enumerate(("z", "n"), start=3):
        records.append(
            {"id": k, "file_name": f"img/{name}.png", "height": 2, "width": 4, "labels": f"{name}_labels.png"}
        )
    (pred_dir / "images.json").write_text(json.dumps(records))
    split = tmp_path / "val.txt"
    split.write_text("x\ny\n")
    reading = LabelReading(NAMES, split_file=str(split))
    out = analyze_semantic(gt_dir, pred_dir, tmp_path / "o1", reading, num_images=2)
    assert out["evaluator"].confusion.tolist() == CONFUSION  # x and y only: z's wrong pixels are not counted
    assert out["left_out"] == ["img/z.png", "img/n.png"]
    summary = json.loads((tmp_path / "o1" / "summary.json").read_text())
    assert summary["images"] == 2 and summary["left_out"] == 2 and summary["split_file"] == str(split)
    line = format_report(out, tmp_path / "o1").splitlines()[0]
    assert line == f"scored the 2 image(s) of split_file {split}; left out 2 predicted image(s) outside it " + (
        "(img/z.png, img/n.png)"
    )
    with pytest.raises(ValueError, match=r"1 predicted image\(s\) have no ground-truth map .*n\.png"):
        analyze_semantic(gt_dir, pred_dir, tmp_path / "o2", LabelReading(NAMES))  # no split: still an error
    split.write_text("x\ny\nw\n")
    cv2.imwrite(str(gt_dir / "w.png"), GT_Y)  # a stem of the split that nobody predicted: still an error
    with pytest.raises(ValueError, match=r"1 of the 3 ground-truth map\(s\) of split_file .*val\.txt .*\(w\.png\)"):
        analyze_semantic(gt_dir, pred_dir, tmp_path / "o3", reading)


def test_a_rerun_removes_its_earlier_outputs_and_nothing_else(tmp_path):
    gt_dir, pred_dir = write_case(tmp_path, {"x": (GT_X, PRED_X), "z": (GT_X, PRED_X), "y": (GT_Y, GT_Y)})
    folder = tmp_path / "out"
    analyze_semantic(gt_dir, pred_dir, folder, LabelReading(NAMES), num_images=2)
    assert sorted(p.name for p in (folder / "worst").iterdir()) == ["01_x.jpg", "02_z.jpg"]
    (folder / "notes.txt").write_text("mine")
    (folder / "worst" / "keep.jpg").write_bytes(b"mine")
    (folder / "worst" / "07_photo.jpg").write_bytes(b"mine")  # named like a drawing, recorded by no run
    analyze_semantic(gt_dir, pred_dir, folder, LabelReading(NAMES), num_images=1)
    assert sorted(p.name for p in (folder / "worst").iterdir()) == ["01_x.jpg", "07_photo.jpg", "keep.jpg"]
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "worst" / "keep.jpg").read_bytes() == b"mine"
    with pytest.raises(ValueError, match="has value"):  # a mistake: the folder stays as it was
        analyze_semantic(gt_dir, pred_dir, folder, LabelReading(NAMES[:1]), num_images=1)
    assert (folder / "worst" / "01_x.jpg").is_file() and (folder / "summary.json").is_file()
