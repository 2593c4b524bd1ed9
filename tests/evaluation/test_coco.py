"""COCO evaluation: the evaluator must give exactly pycocotools' numbers."""

import copy
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detkit.evaluation import (
    CocoEvaluator,
    SemSegEvaluator,
    build_evaluator,
    coco_metrics,
    evaluate_coco,
    masks_to_rle,
    per_class_ap,
)
from detkit.evaluation.coco import STAT_NAMES, faster_coco_eval_available

CATS = [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}, {"id": 11, "name": "bird"}]  # bird: no gt
SIZES = [(64, 80), (96, 64), (128, 128), (72, 100)]  # (h, w) per image
IMAGE_IDS = [10, 20, 35, 41]


def _rle(mask: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    r["counts"] = r["counts"].decode("ascii")
    return r


def make_gt(seed: int = 0) -> dict:
    """A tiny COCO dict: small/medium/large objects, polygons and RLEs, one crowd region, an empty class."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for image_id, (h, w) in zip(IMAGE_IDS, SIZES):
        images.append({"id": image_id, "height": h, "width": w, "file_name": f"{image_id}.png"})
        for k in range(int(rng.integers(2, 5))):
            bw, bh = (int(v) for v in rng.integers(6, min(h, w) - 4, size=2))
            x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            cat = int(rng.choice([3, 7]))
            if k % 2 == 0:  # polygon: a diamond inside the box
                cx, cy = x0 + bw / 2, y0 + bh / 2
                poly = [cx, y0, x0 + bw, cy, cx, y0 + bh, x0, cy]
                rle = mask_utils.merge(mask_utils.frPyObjects([poly], h, w))
                seg, mask = [poly], mask_utils.decode(rle)
            else:  # RLE: an ellipse inside the box
                yy, xx = np.mgrid[:h, :w]
                mask = (((xx - x0 - bw / 2) / (bw / 2)) ** 2 + ((yy - y0 - bh / 2) / (bh / 2)) ** 2) <= 1
                mask = mask.astype(np.uint8)
                seg = _rle(mask)
            ys, xs = np.nonzero(mask)
            bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": cat,
                    "bbox": bbox,
                    "area": float(mask.sum()),
                    "iscrowd": 0,
                    "segmentation": seg,
                }
            )
    big = [4.0, 24.0, 120.0, 24.0, 120.0, 124.0, 4.0, 124.0]  # a large (> 96**2 px) dog in image 35
    anns.append(
        {
            "id": len(anns) + 1,
            "image_id": IMAGE_IDS[2],
            "category_id": 7,
            "bbox": [4.0, 24.0, 116.0, 100.0],
            "area": float(mask_utils.area(mask_utils.merge(mask_utils.frPyObjects([big], 128, 128)))),
            "iscrowd": 0,
            "segmentation": [big],
        }
    )
    crowd = np.zeros(SIZES[2], np.uint8)
    crowd[2:20, 90:126] = 1
    anns.append(
        {
            "id": len(anns) + 1,
            "image_id": IMAGE_IDS[2],
            "category_id": 3,
            "bbox": [90.0, 2.0, 36.0, 18.0],
            "area": float(crowd.sum()),
            "iscrowd": 1,
            "segmentation": _rle(crowd),
        }
    )
    return {"images": images, "annotations": anns, "categories": copy.deepcopy(CATS)}


@pytest.fixture
def gt(tmp_path):
    d = make_gt()
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(d))
    return SimpleNamespace(dict=d, path=str(path), coco=COCO(str(path)))


def gt_as_preds(coco: COCO, image_id: int, label_of: dict) -> dict:
    """Ground truth of one image (crowd excluded) in the detector's prediction format."""
    anns = [a for a in coco.imgToAnns[image_id] if not a["iscrowd"]]
    boxes = torch.tensor(
        [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns],
        dtype=torch.float32,
    ).reshape(-1, 4)
    masks = torch.from_numpy(np.stack([coco.annToMask(a) for a in anns])).bool()
    labels = torch.tensor([label_of[a["category_id"]] for a in anns], dtype=torch.int64)
    return {"boxes": boxes, "scores": torch.ones(len(anns)), "labels": labels, "masks": masks}


def perturb(pred: dict, size: tuple, rng: np.random.Generator) -> dict:
    """Jitter boxes and shift masks, random scores, drop ~25%, add 2 false positives (seeded)."""
    h, w = size
    n = len(pred["boxes"])
    keep = torch.from_numpy(rng.random(n) > 0.25)
    boxes = pred["boxes"] + torch.from_numpy(rng.normal(0, 2.0, (n, 4))).float()
    masks = torch.stack(
        [torch.roll(m, shifts=tuple(int(s) for s in rng.integers(-2, 3, 2)), dims=(0, 1)) for m in pred["masks"]]
    )
    fp_boxes, fp_masks = [], []
    for _ in range(2):
        x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        x1, y1 = x0 + int(rng.integers(4, w // 2)), y0 + int(rng.integers(4, h // 2))
        fp_boxes.append([x0, y0, x1, y1])
        m = torch.zeros(h, w, dtype=torch.bool)
        m[y0:y1, x0:x1] = True
        fp_masks.append(m)
    return {
        "boxes": torch.cat([boxes[keep], torch.tensor(fp_boxes, dtype=torch.float32)]),
        "scores": torch.from_numpy(rng.random(int(keep.sum()) + 2)).float(),
        "labels": torch.cat([pred["labels"][keep], torch.from_numpy(rng.integers(0, 3, 2))]),
        "masks": torch.cat([masks[keep], torch.stack(fp_masks)]),
    }


def reference_results(preds_by_image: dict, label_to_cat: list) -> list:
    """COCO results written the plain way (independent of the evaluator's conversion)."""
    out = []
    for image_id, p in preds_by_image.items():
        for box, score, label, mask in zip(
            p["boxes"].tolist(), p["scores"].tolist(), p["labels"].tolist(), p["masks"].numpy()
        ):
            x0, y0, x1, y1 = box
            out.append(
                {
                    "image_id": image_id,
                    "category_id": label_to_cat[label],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": score,
                    "segmentation": _rle(mask),
                }
            )
    return out


def pycocotools_stats(gt_path: str, results: list, iou_type: str, img_ids=None) -> COCOeval:
    """Run pycocotools the textbook way (segm results carry no box, so areas are mask areas)."""
    coco = COCO(gt_path)
    res = copy.deepcopy(results)
    if iou_type == "segm":
        res = [{k: v for k, v in r.items() if k != "bbox"} for r in res]
    E = COCOeval(coco, coco.loadRes(res), iou_type)
    if img_ids is not None:
        E.params.imgIds = sorted(img_ids)
    E.evaluate()
    E.accumulate()
    E.summarize()
    return E


def run_evaluator(gt, preds_by_image: dict, **kw) -> CocoEvaluator:
    ev = CocoEvaluator(ann_file=gt.path, iou_types=("bbox", "segm"), **kw)
    items = list(preds_by_image.items())
    for i in range(0, len(items), 2):  # batches of two images
        chunk = items[i : i + 2]
        ev.process({"image_ids": [k for k, _ in chunk]}, [p for _, p in chunk])
    ev.compute()
    return ev


def perturbed_preds(gt, seed=1) -> dict:
    rng = np.random.default_rng(seed)
    label_of = {3: 0, 7: 1, 11: 2}
    return {i: perturb(gt_as_preds(gt.coco, i, label_of), s, rng) for i, s in zip(IMAGE_IDS, SIZES)}


def test_ground_truth_scores_ap_one(gt):
    label_of = {3: 0, 7: 1, 11: 2}
    ev = run_evaluator(gt, {i: gt_as_preds(gt.coco, i, label_of) for i in IMAGE_IDS})
    for t in ("bbox", "segm"):
        for n in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"):
            # pycocotools divides by (tp + fp + eps), so a perfect score is 1 - 2e-16 at times
            assert ev.metrics[f"{t}/{n}"] == pytest.approx(1.0, abs=1e-12), (t, n, ev.metrics)
    assert "segm/AP" in ev.summary() or "segm:" in ev.summary()


def test_metric_names_are_the_keys_compute_gives(gt):
    ev = run_evaluator(gt, perturbed_preds(gt))
    assert list(ev.metrics) == ev.metric_names and len(ev.metric_names) == 2 * len(STAT_NAMES)
    assert CocoEvaluator(ann_file=gt.path).metric_names == [f"bbox/{n}" for n in STAT_NAMES]


def test_check_gt_names_the_file_and_the_annotation(gt, tmp_path):
    data = json.loads(Path(gt.path).read_text())
    ann_id = data["annotations"][0]["id"]
    del data["annotations"][0]["area"]
    path = tmp_path / "no_area.json"
    path.write_text(json.dumps(data))
    dataset = SimpleNamespace(coco=SimpleNamespace(dataset=data), ann_file=str(path), class_names=None)
    ev = CocoEvaluator(dataset=dataset)  # the ground truth of a dataset is read at the first compute()
    with pytest.raises(ValueError, match=rf"{path}: annotation id={ann_id} .*has no area"):
        ev.check_gt()
    with pytest.raises(ValueError, match="has no area"):
        CocoEvaluator(ann_file=path)  # a file is read (and checked) at once
    CocoEvaluator(ann_file=gt.path).check_gt()


@pytest.mark.parametrize("annotations", ["missing", None])
def test_ground_truth_without_annotations_names_the_file(gt, tmp_path, annotations):
    data = json.loads(Path(gt.path).read_text())
    if annotations == "missing":
        del data["annotations"]  # a COCO image-info test file
    else:
        data["annotations"] = annotations
    path = tmp_path / "image_info.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=rf"^{path}: ground truth has no 'annotations' list; .*test-info file"):
        CocoEvaluator(ann_file=path)


def test_perturbed_predictions_equal_pycocotools_exactly(gt, capsys):
    preds = perturbed_preds(gt)
    ev = run_evaluator(gt, preds, backend="pycocotools")
    assert capsys.readouterr().out == ""  # pycocotools' chatter is captured, not printed
    ref = reference_results(preds, [3, 7, 11])
    for t in ("bbox", "segm"):
        E = pycocotools_stats(gt.path, ref, t)
        got = [ev.metrics[f"{t}/{n}"] for n in STAT_NAMES]
        assert got == [float(v) for v in E.stats], t
        assert 0.0 < ev.metrics[f"{t}/AP"] < 1.0  # the perturbation matters
        assert "Average Precision" in ev.logs[t]
    # coco_metrics on the written results file gives the same numbers
    path = Path(gt.path).with_name("pred.json")
    path.write_text(json.dumps(ev.results))
    for t in ("bbox", "segm"):
        m = coco_metrics(gt.path, str(path), iou_type=t, backend="pycocotools")
        assert m == {k: v for k, v in ev.metrics.items() if k.startswith(t)}


def test_output_is_captured_and_printed_only_when_asked(gt, capsys):
    results = reference_results(perturbed_preds(gt), [3, 7, 11])
    capsys.readouterr()
    out = evaluate_coco(gt.path, results, "bbox")
    assert capsys.readouterr().out == ""
    assert "Average Precision  (AP) @[ IoU=0.50:0.95" in out.log and out.cocoeval.params.iouType == "bbox"
    assert coco_metrics(gt.path, results, "bbox", verbose=True) == out.metrics
    assert "Average Precision  (AP) @[ IoU=0.50:0.95" in capsys.readouterr().out


def test_partial_run_scores_only_processed_images(gt):
    preds = perturbed_preds(gt)
    part = {i: preds[i] for i in IMAGE_IDS[:2]}
    ev = run_evaluator(gt, part, backend="pycocotools")
    ref = reference_results(part, [3, 7, 11])
    E = pycocotools_stats(gt.path, ref, "bbox", img_ids=IMAGE_IDS[:2])
    assert [ev.metrics[f"bbox/{n}"] for n in STAT_NAMES] == [float(v) for v in E.stats]
    # scoring the same results on every image counts the unprocessed images' objects as missed
    assert coco_metrics(gt.path, ref, "bbox")["bbox/AR100"] < ev.metrics["bbox/AR100"]


def test_masks_round_trip(gt):
    preds = perturbed_preds(gt)
    ev = run_evaluator(gt, preds)
    res = json.loads(json.dumps(ev.results))  # JSON-serialisable
    for image_id, p in preds.items():
        rows = [r for r in res if r["image_id"] == image_id]
        assert len(rows) == len(p["boxes"])
        decoded = mask_utils.decode([r["segmentation"] for r in rows]).transpose(2, 0, 1)
        assert np.array_equal(decoded.astype(bool), p["masks"].numpy())
        xyxy = torch.tensor([[b[0], b[1], b[0] + b[2], b[1] + b[3]] for b in (r["bbox"] for r in rows)])
        assert torch.allclose(xyxy.float(), p["boxes"], atol=1e-4)
    assert masks_to_rle(torch.zeros(0, 5, 5, dtype=torch.bool)) == []
    float_mask = torch.tensor([[[0.2, 0.7], [0.9, 0.1]]])
    assert mask_utils.decode(masks_to_rle(float_mask)[0]).tolist() == [[0, 1], [1, 0]]


def test_per_class_rows_match_precision_array(gt):
    ev = run_evaluator(gt, perturbed_preds(gt), backend="pycocotools")
    E = pycocotools_stats(gt.path, reference_results(perturbed_preds(gt), [3, 7, 11]), "bbox")
    prec = E.eval["precision"]  # [T, R, K, A, M]
    rows = ev.per_class["bbox"]
    assert [r.category_id for r in rows] == [3, 7, 11] and [r.name for r in rows] == ["cat", "dog", "bird"]
    for k, r in enumerate(rows):
        s, s50 = prec[:, :, k, 0, 2], prec[0, :, k, 0, 2]
        assert (float(np.mean(s[s > -1])) if (s > -1).any() else -1.0) == r.AP
        assert (float(np.mean(s50[s50 > -1])) if (s50 > -1).any() else -1.0) == r.AP50
        n_gt = sum(1 for a in gt.dict["annotations"] if a["category_id"] == r.category_id and not a["iscrowd"])
        assert r.num_gt == n_gt
    assert rows[2].AP == -1.0 and rows[2].num_gt == 0  # no ground truth for 'bird'
    # every class with gt has the same number of valid entries, so their mean is the overall AP
    assert np.isclose(np.mean([r.AP for r in rows[:2]]), ev.metrics["bbox/AP"], rtol=0, atol=1e-12)
    assert per_class_ap(E)[0] == rows[0]
    assert "cat" in ev.summary() and "AP50" in ev.summary()


def test_empty_predictions(gt):
    empty = {
        "boxes": torch.zeros(0, 4),
        "scores": torch.zeros(0),
        "labels": torch.zeros(0, dtype=torch.int64),
        "masks": torch.zeros(0, 64, 80, dtype=torch.bool),
    }
    with pytest.warns(UserWarning, match="no bbox detections"):
        ev = run_evaluator(gt, {IMAGE_IDS[0]: empty})
    assert ev.results == []
    assert ev.metrics["bbox/AP"] == 0.0 and ev.metrics["segm/AP"] == 0.0
    with pytest.warns(UserWarning):
        m = coco_metrics(gt.path, [], "bbox")
    assert m["bbox/AP"] == 0.0 and m["bbox/AR100"] == 0.0 and set(m) == {f"bbox/{n}" for n in STAT_NAMES}
    ev = CocoEvaluator(ann_file=gt.path)
    with pytest.warns(UserWarning, match="no image was processed"):
        assert ev.compute()["bbox/AP"] == 0.0


def test_non_contiguous_category_ids(gt):
    # default: labels 0, 1, 2 map to the sorted category ids 3, 7, 11
    ev = CocoEvaluator(ann_file=gt.path)
    assert ev.label_to_cat_id == [3, 7, 11] and ev.class_names == ["cat", "dog", "bird"]
    pred = {"boxes": torch.tensor([[0.0, 0, 5, 5]] * 3), "scores": torch.ones(3), "labels": torch.tensor([0, 1, 2])}
    ev.process({"image_ids": [IMAGE_IDS[0]]}, [pred])
    assert [r["category_id"] for r in ev.results] == [3, 7, 11]
    # a dataset's own (here: permuted) map wins, and scores a matching model at AP 1
    perm = {0: 11, 1: 3, 2: 7}
    dataset = SimpleNamespace(coco=gt.coco, ann_file=gt.path, label_to_cat_id=perm, class_names=["bird", "cat", "dog"])
    snapshot = copy.deepcopy(gt.coco.dataset)
    ev = CocoEvaluator(dataset=dataset, iou_types=("bbox", "segm"))
    for i in IMAGE_IDS:
        ev.process({"image_ids": [i]}, [gt_as_preds(gt.coco, i, {11: 0, 3: 1, 7: 2})])
    assert ev.compute()["bbox/AP"] == pytest.approx(1.0, abs=1e-12)
    assert ev.metrics["segm/AP"] == pytest.approx(1.0, abs=1e-12)
    assert [r.name for r in ev.per_class["bbox"]] == ["cat", "dog", "bird"]
    assert gt.coco.dataset == snapshot  # the dataset's COCO object (polygons) is untouched


def test_label_map_must_be_contiguous(gt):
    with pytest.raises(ValueError, match="contiguous labels"):
        CocoEvaluator(ann_file=gt.path, label_to_cat_id={0: 3, 2: 7})
    with pytest.raises(ValueError, match="2 class names for 3 labels"):
        CocoEvaluator(ann_file=gt.path, class_names=["a", "b"])


def test_repeated_images_are_counted_once(gt):
    preds = perturbed_preds(gt)
    once = run_evaluator(gt, preds)
    ev = CocoEvaluator(ann_file=gt.path, iou_types=("bbox", "segm"))
    for i in IMAGE_IDS + IMAGE_IDS[:2]:  # a padded sampler repeats the first images
        ev.process({"image_ids": [i]}, [preds[i]])
    assert ev.compute() == once.metrics
    ev.reset()
    assert ev.results == [] and ev.metrics == {}


def test_bad_inputs_have_clear_errors(gt, tmp_path):
    ev = CocoEvaluator(ann_file=gt.path, iou_types=("bbox", "segm"))
    pred = {"boxes": torch.zeros(1, 4), "scores": torch.ones(1), "labels": torch.tensor([0])}
    with pytest.raises(ValueError, match="no 'masks'"):
        ev.process({"image_ids": [IMAGE_IDS[0]]}, [pred])
    with pytest.raises(ValueError, match="labels must lie in 0..2"):
        CocoEvaluator(ann_file=gt.path).process({"image_ids": [10]}, [dict(pred, labels=torch.tensor([3]))])
    with pytest.raises(ValueError, match=r"image ids \(999\)"):
        coco_metrics(gt.path, [{"image_id": 999, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 1.0}])
    with pytest.raises(ValueError, match="lacks segmentation"):
        coco_metrics(gt.path, [{"image_id": 10, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 1.0}], "segm")
    bad = make_gt()
    del bad["annotations"][0]["area"]
    with pytest.raises(ValueError, match="annotation id=1 .* has no area"):
        coco_metrics(bad, [], "bbox")
    with pytest.raises(FileNotFoundError, match="nope.json"):
        coco_metrics(str(tmp_path / "nope.json"), [])
    with pytest.warns(UserWarning, match=r"category ids \(99\)"):
        coco_metrics(gt.path, [{"image_id": 10, "category_id": 99, "bbox": [0, 0, 1, 1], "score": 1.0}])


def test_inputs_are_not_modified(gt):
    results = reference_results(perturbed_preds(gt), [3, 7, 11])
    r_copy, gt_copy = copy.deepcopy(results), copy.deepcopy(gt.dict)
    coco_metrics(gt.dict, results, "segm")
    coco_metrics(gt.coco, results, "bbox")
    assert results == r_copy and gt.dict == gt_copy


@pytest.mark.skipif(not faster_coco_eval_available(), reason="faster_coco_eval is not installed")
def test_faster_coco_eval_backend_agrees_with_pycocotools(gt):
    preds = perturbed_preds(gt, seed=5)
    slow = run_evaluator(gt, preds, backend="pycocotools")
    fast = run_evaluator(gt, preds, backend="faster_coco_eval")
    assert fast.metrics.keys() == slow.metrics.keys()
    # faster_coco_eval leaves out pycocotools' eps in tp / (tp + fp + eps): equal up to the last bit
    for k, v in slow.metrics.items():
        assert fast.metrics[k] == pytest.approx(v, abs=1e-12), k
    for t in ("bbox", "segm"):
        for a, b in zip(fast.per_class[t], slow.per_class[t]):
            assert a[:2] == b[:2] and a.num_gt == b.num_gt
            assert pytest.approx(b.AP, abs=1e-12) == a.AP and pytest.approx(b.AP50, abs=1e-12) == a.AP50
    # so 'auto' keeps pycocotools' exact numbers even when faster_coco_eval is installed
    assert run_evaluator(gt, preds, backend="auto").metrics == slow.metrics


def test_build_evaluator_picks_iou_types(gt):
    dataset = SimpleNamespace(
        coco=gt.coco, ann_file=gt.path, label_to_cat_id=[3, 7, 11], class_names=["cat", "dog", "bird"], with_masks=False
    )
    ev = build_evaluator({"model": {"type": "TwoStageDetector", "mask_head": None}}, dataset)
    assert isinstance(ev, CocoEvaluator) and ev.iou_types == ("bbox",)
    ev = build_evaluator({"model": {"type": "TwoStageDetector", "mask_head": {"type": "MaskRCNNHead"}}}, dataset)
    assert ev.iou_types == ("bbox", "segm")
    with_masks = SimpleNamespace(**{**vars(dataset), "with_masks": True})
    assert build_evaluator({"model": {"type": "OneStageDetector"}}, with_masks).iou_types == ("bbox", "segm")
    yolo_seg = {"model": {"type": "OneStageDetector", "head": {"type": "YOLOSegHead"}}}
    assert build_evaluator(yolo_seg, dataset).iou_types == ("bbox", "segm")
    ev = build_evaluator({"model": {"type": "Segmentor", "num_classes": 3}}, dataset)
    assert isinstance(ev, SemSegEvaluator) and ev.num_classes == 3 and ev.class_names == ["cat", "dog", "bird"]


WORKER = textwrap.dedent("""
    import json, sys, torch, torch.distributed as dist
    sys.path.insert(0, {test_dir!r})
    from test_coco import make_gt, perturbed_preds, IMAGE_IDS
    from types import SimpleNamespace
    from pycocotools.coco import COCO
    from detkit.evaluation import CocoEvaluator
    rank = int(sys.argv[1])
    dist.init_process_group("gloo", init_method="file://{store}", rank=rank, world_size=2)
    gt = SimpleNamespace(path={gt_path!r}, coco=COCO({gt_path!r}))
    preds = perturbed_preds(gt)
    ev = CocoEvaluator(ann_file=gt.path, iou_types=("bbox", "segm"), backend="pycocotools")
    mine = [IMAGE_IDS[0], IMAGE_IDS[2], IMAGE_IDS[3]] if rank == 0 else [IMAGE_IDS[1], IMAGE_IDS[0]]
    for i in mine:
        ev.process({{"image_ids": [i]}}, [preds[i]])
    m = ev.compute()
    json.dump({{"metrics": m, "n": len(ev.results), "per_class": ev.per_class["bbox"]}},
              open({out!r} + str(rank), "w"))
    dist.destroy_process_group()
""")


def test_distributed_gather_equals_single_process(gt, tmp_path):
    script = tmp_path / "worker.py"
    out = str(tmp_path / "out")
    script.write_text(
        WORKER.format(test_dir=os.path.dirname(__file__), store=str(tmp_path / "store"), gt_path=gt.path, out=out)
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, str(script), str(r)], env=env) for r in range(2)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    single = run_evaluator(gt, perturbed_preds(gt), backend="pycocotools")
    for r in range(2):
        got = json.loads(Path(out + str(r)).read_text())
        assert got["metrics"] == single.metrics
        assert got["n"] == len(single.results)
        assert [tuple(x) for x in got["per_class"]] == [tuple(x) for x in single.per_class["bbox"]]


def test_with_real_coco_dataset_and_collate(tmp_path):
    """Ground truth fed back through CocoDataset + collate scores AP 1 (the dataset's own label map)."""
    synthetic = pytest.importorskip("detkit.data.synthetic")
    coco_mod = pytest.importorskip("detkit.data.datasets.coco")
    collate = pytest.importorskip("detkit.data.collate").collate
    paths = synthetic.make_shapes(tmp_path / "shapes", num_train=0, num_val=4, size=(64, 96), seed=3)
    ds = coco_mod.CocoDataset(paths["val_ann_file"], paths["val_img_dir"], with_masks=True)
    ev = build_evaluator({"model": {"type": "TwoStageDetector", "mask_head": {"type": "MaskHead"}}}, ds)
    assert ev.iou_types == ("bbox", "segm") and ev.class_names == ds.class_names
    for i in range(0, len(ds), 2):
        batch = collate([ds[i], ds[i + 1]])
        preds = [
            {
                "boxes": t["boxes"],
                "scores": torch.ones(len(t["labels"])),
                "labels": t["labels"],
                "masks": t["masks"].bool(),
            }
            for t in batch["targets"]
        ]
        ev.process(batch, preds)
    m = ev.compute()
    assert m["bbox/AP"] == pytest.approx(1.0, abs=1e-12) and m["segm/AP"] == pytest.approx(1.0, abs=1e-12)
    assert {r["category_id"] for r in ev.results} <= set(ds.label_to_cat_id.values())
