"""analyze() writes every output; write_eval_report() writes the training plots; per-image ranking."""

from __future__ import annotations

import csv
import json
import warnings

import cv2
import pytest

from detkit.analysis import analyze, write_eval_report
from detkit.analysis.confusion import confusion_matrix
from detkit.analysis.per_image import rank_images
from detkit.evaluation import coco_metrics

PNG = b"\x89PNG\r\n\x1a\n"


def test_analyze_writes_everything(shapes, shapes_preds, tmp_path):
    gt_path, pred_path, gt, preds = shapes_preds
    out = analyze(gt_path, pred_path, tmp_path / "a", img_dir=shapes["val_img_dir"], num_images=2)
    d = tmp_path / "a"
    for name in ("pr_curves.png", "confusion_matrix.png", "errors.png"):
        assert (d / name).read_bytes()[:8] == PNG and (d / name).stat().st_size > 15_000, name
    for name in ("per_class.csv", "confusion_matrix.csv", "errors.csv", "per_image.csv", "summary.json"):
        assert (d / name).stat().st_size > 50, name
    summary = json.loads((d / "summary.json").read_text())
    assert summary["metrics"] == coco_metrics(gt_path, preds)  # the same pycocotools numbers
    assert summary["confusion"]["num_gt"] == len(gt["annotations"])
    worst, best = sorted((d / "worst").iterdir()), sorted((d / "best").iterdir())
    assert len(worst) == 2 and len(best) == 2
    img = cv2.imread(str(worst[0]))
    assert img.shape[1] > 2 * 96 and img.shape[0] > 96  # side by side, enlarged
    rows = list(csv.DictReader((d / "per_image.csv").open()))
    errors = [int(r["errors"]) for r in rows]
    assert errors == sorted(errors, reverse=True) and errors[0] > 0
    assert f"image{rows[0]['image_id']}.jpg" in worst[0].name
    assert all(int(r["errors"]) == int(r["fp"]) + int(r["fn"]) for r in rows)
    assert "circle" in out["table"]


def test_per_image_errors_from_matching():
    from fake_coco import det, make_gt

    from detkit.analysis import load_gt, load_results

    gt = make_gt({1: [(1, 10, 10, 30, 30)], 2: [(1, 10, 10, 30, 30), (2, 50, 50, 30, 30)], 3: []})
    coco_gt = load_gt(gt)
    res = load_results([det(1, 1, 10, 10, 30, 30), det(2, 2, 10, 10, 30, 30), det(2, 3, 0, 60, 9, 9)], coco_gt)
    ranked = rank_images(confusion_matrix(coco_gt, res))
    # image 2: mislabelled (1 FN + 1 FP), missed (1 FN), background (1 FP) -> 4; image 3 has nothing: left out
    assert [(m.image_id, m.errors) for m in ranked] == [(2, 4), (1, 0)]


def test_worst_and_best_never_share_an_image():
    """With few images worst/ and best/ were the same images (both took the first ``num`` of all of them)."""
    from fake_coco import det, make_gt

    from detkit.analysis import load_gt, load_results
    from detkit.analysis.per_image import worst_and_best

    box = (1, 10, 10, 30, 30)
    gt = make_gt({i: [box] for i in range(1, 5)})
    coco_gt = load_gt(gt)
    # images 1 and 2 found, 3 missed, 4 found with a false positive beside it
    res = load_results([det(1, 1, 10, 10, 30, 30), det(2, 1, 10, 10, 30, 30), det(4, 1, 10, 10, 30, 30),
                        det(4, 1, 60, 60, 20, 20)], coco_gt)  # fmt: skip
    ranked = rank_images(confusion_matrix(coco_gt, res))
    groups = worst_and_best(ranked, num=8)
    worst, best = [m.image_id for m in groups["worst"]], [m.image_id for m in groups["best"]]
    assert worst == [3, 4] or worst == [4, 3]
    assert best == [1, 2] and not set(worst) & set(best)
    many = worst_and_best(ranked, num=1)  # enough images for both: one each, the worst and a clean one
    assert len(many["worst"]) == 1 and many["best"][0].image_id == 1
    clean = worst_and_best([m for m in ranked if not m.errors], num=8)  # an image without errors is not "worst"
    assert clean["worst"] == [] and [m.image_id for m in clean["best"]] == [1, 2]


def test_write_eval_report(shapes_preds, tmp_path):
    gt_path, _, _, preds = shapes_preds
    out = write_eval_report(tmp_path / "w", str(gt_path), preds, ["a", "b", "c", "d"])
    assert {p.name for p in out["files"]} == {"pr_curves.png", "confusion_matrix.png", "confusion_matrix.csv"}
    assert out["metrics"]["bbox/AP"] == coco_metrics(gt_path, preds)["bbox/AP"]
    assert "pred:a" in (tmp_path / "w" / "confusion_matrix.csv").read_text()
    with pytest.raises(ValueError, match="class names"):
        write_eval_report(tmp_path / "w", str(gt_path), preds, ["a"])


def test_analyze_segm(shapes, tmp_path):
    from fake_coco import segm_results

    gt_path = shapes["val_ann_file"]
    gt = json.loads(gt_path.read_text())
    res = segm_results(gt, seed=4)
    out = analyze(gt_path, res, tmp_path / "s", iou_type="segm", img_dir=shapes["val_img_dir"], num_images=1)
    assert out["metrics"] == coco_metrics(gt_path, res, iou_type="segm")
    assert 0 < out["metrics"]["segm/AP"] < 1
    cm = out["confusion"]
    assert cm.matrix.sum() == cm.num_gt + cm.num_unmatched_predictions and cm.num_gt == len(gt["annotations"])
    assert out["errors"].counts["classification"] > 0
    assert out["errors"].ap == pytest.approx(out["metrics"]["segm/AP50"], abs=1e-12)
    assert len(list((tmp_path / "s" / "worst").glob("*.jpg"))) == 1


def test_disagreeing_predictions_warn_loudly(shapes_preds, tmp_path, capsys):
    """Category ids the ground truth lacks, names that differ for the same id, few images: one warning each."""
    from detkit.analysis import load_gt, load_results
    from detkit.evaluation.checks import CategoryMismatchWarning

    gt_path, _, gt, preds = shapes_preds
    coco_gt = load_gt(gt_path)
    names = {c["id"]: c["name"] for c in gt["categories"]}
    ids = sorted(names)
    shifted = [{**p, "category_id": ids.index(p["category_id"])} for p in preds]  # 0-based labels as ids
    with pytest.warns(CategoryMismatchWarning, match="0-based labels") as record:
        kept = load_results(shifted, coco_gt)
    assert all(r["category_id"] in names for r in kept) and len(kept) < len(shifted)  # label 0 dropped
    assert len(record) == 1  # one warning: what disagrees, and the likely fix
    renamed = [{**p, "category_name": names[ids[(ids.index(p["category_id"]) + 1) % len(ids)]]} for p in preds]
    with pytest.warns(CategoryMismatchWarning, match=r"category names differ .*\(id 1: rectangle vs circle"):
        load_results(renamed, coco_gt)
    one_image = [p for p in preds if p["image_id"] == preds[0]["image_id"]]
    with pytest.warns(CategoryMismatchWarning, match=f"cover only 1 of the {len(gt['images'])} images"):
        load_results(one_image, coco_gt)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CategoryMismatchWarning)  # consistent inputs: no warning
        out = analyze(gt_path, preds, tmp_path / "a", tide=True)
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["ap_units"] == "0..1"
    assert out["errors"] is not None and "error breakdown" not in capsys.readouterr().err  # no bar off a terminal


def test_predictions_of_other_files_with_the_same_names_warn(tmp_path):
    import json
    import warnings

    from fake_coco import det, make_gt

    from detkit.analysis.common import load_gt, load_results

    gt = make_gt({1: [(10, 10, 30, 30, 1)], 2: [(40, 40, 20, 20, 2)]})
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    for split in ("val", "train"):
        (tmp_path / split).mkdir()
        for im in gt["images"]:
            (tmp_path / split / im["file_name"]).write_bytes(split.encode())  # same names, other files
    coco = load_gt(tmp_path / "gt.json")

    def results(split):
        return [{**det(i, 1, 10, 10, 30, 30), "file_name": str(tmp_path / split / f"{i}.png")} for i in (1, 2)]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_results(results("val"), coco, img_dir=tmp_path / "val")  # the right split: silent
        assert not [w for w in caught if "other files" in str(w.message)]
        load_results(results("train"), coco, img_dir=tmp_path / "val")
    shown = [str(w.message) for w in caught if "other files" in str(w.message)]
    assert len(shown) == 1 and "2 predicted file(s)" in shown[0] and "another split" in shown[0], shown
