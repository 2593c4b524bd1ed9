"""Semantic segmentation metrics: confusion matrix, ignore pixels, a hand-computed case."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

import detkit.evaluation.semseg as semseg
from detkit.evaluation import SemSegEvaluator, build_evaluator


def test_perfect_prediction_scores_one():
    g = torch.Generator().manual_seed(0)
    gt = torch.randint(0, 4, (40, 56), generator=g)
    gt[:5] = 255
    ev = SemSegEvaluator(num_classes=4)
    ev.update(gt.clone().clamp(max=3), gt)
    assert ev.compute() == {"sem/mIoU": 1.0, "sem/mAcc": 1.0, "sem/aAcc": 1.0}
    assert list(ev.compute()) == list(ev.metric_names)  # the keys it says it gives, in that order
    assert int(ev.confusion.sum()) == 35 * 56  # the ignored rows never count


def test_ignore_pixels_never_count():
    g = torch.Generator().manual_seed(1)
    gt = torch.randint(0, 3, (32, 32), generator=g)
    pred = torch.randint(0, 3, (32, 32), generator=g)
    gt_ign = gt.clone()
    gt_ign[8:20, 4:30] = 255
    a, b = SemSegEvaluator(3), SemSegEvaluator(3)
    a.update(pred, gt_ign)
    wrong = pred.clone()
    wrong[8:20, 4:30] = (gt[8:20, 4:30] + 1) % 3  # any prediction under ignored pixels
    b.update(wrong, gt_ign)
    assert torch.equal(a.confusion, b.confusion)
    assert a.compute() == b.compute()
    c = SemSegEvaluator(3, ignore_index=7)
    c.update(pred, torch.where(gt_ign == 255, torch.tensor(7), gt_ign))
    assert torch.equal(c.confusion, a.confusion)


def test_hand_computed_case():
    gt = torch.tensor([[0, 0, 1, 1], [0, 2, 2, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [0, 2, 0, 3]])
    ev = SemSegEvaluator(num_classes=5, class_names=["a", "b", "c", "d", "e"])
    ev.update(pred, gt)
    m = ev.compute()
    # class 0: tp 2, gt 3, pred 3 -> IoU 2/4; class 1: tp 2, gt 2, pred 3 -> 2/3; class 2: tp 1, gt 2, pred 1 -> 1/2
    # class 3, 4: never in gt nor (valid) prediction -> nan, left out of the mean
    assert m["sem/mIoU"] == pytest.approx((2 / 4 + 2 / 3 + 1 / 2) / 3, abs=1e-12)
    assert m["sem/mAcc"] == pytest.approx((2 / 3 + 1 + 1 / 2) / 3, abs=1e-12)
    assert m["sem/aAcc"] == pytest.approx(5 / 7, abs=1e-12)
    rows = ev.per_class
    assert [r.name for r in rows] == ["a", "b", "c", "d", "e"] and [r.num_pixels for r in rows] == [3, 2, 2, 0, 0]
    assert rows[1].IoU == pytest.approx(2 / 3) and math.isnan(rows[3].IoU) and math.isnan(rows[4].Acc)
    assert "mIoU" in ev.summary() and "-" in ev.summary()


def test_predicted_but_absent_class_counts_as_zero_iou():
    ev = SemSegEvaluator(num_classes=3)
    ev.update(torch.tensor([[0, 2]]), torch.tensor([[0, 0]]))
    m = ev.compute()
    assert ev.per_class[2].IoU == 0.0 and math.isnan(ev.per_class[2].Acc) and math.isnan(ev.per_class[1].IoU)
    assert m["sem/mIoU"] == pytest.approx((1 / 2 + 0) / 2) and m["sem/mAcc"] == pytest.approx(1 / 2)


def test_process_crops_padding_and_resizes_target_to_prediction():
    g = torch.Generator().manual_seed(2)
    small = torch.randint(0, 3, (20, 30), generator=g)  # target in the network's frame (0.5x)
    padded = torch.full((32, 32), 255, dtype=torch.int64)
    padded[:20, :30] = small
    pred = torch.randint(0, 3, (40, 60), generator=g)  # prediction at the original size
    batch = {"targets": [{"sem_seg": padded}], "image_sizes": [(20, 30)], "image_ids": [1]}
    ev = SemSegEvaluator(3)
    ev.process(batch, [{"sem_seg": pred}])
    ref = SemSegEvaluator(3)
    ref.update(pred, F.interpolate(small[None, None].float(), size=(40, 60), mode="nearest-exact")[0, 0].long())
    assert torch.equal(ev.confusion, ref.confusion)
    same = SemSegEvaluator(3)  # same size: compared pixel for pixel
    same.process({"targets": [{"sem_seg": padded}], "image_sizes": [(20, 30)]}, [{"sem_seg": small}])
    assert same.compute()["sem/aAcc"] == 1.0


def test_process_removes_letterbox_padding():
    gt = torch.tensor([[0, 1], [2, 1]])
    frame = torch.full((4, 4), 255, dtype=torch.int64)
    frame[1:3, 1:3] = gt  # letterboxed by one pixel on every side
    batch = {
        "targets": [{"sem_seg": frame}],
        "image_sizes": [(4, 4)],
        "orig_sizes": [(2, 2)],
        "scale_factors": [(1.0, 1.0)],
        "pad_offsets": [(1, 1)],
    }
    ev = SemSegEvaluator(3)
    ev.process(batch, [{"sem_seg": gt.clone()}])
    assert ev.compute()["sem/aAcc"] == 1.0 and int(ev.confusion.sum()) == 4


def test_bad_labels_raise():
    ev = SemSegEvaluator(3)
    with pytest.raises(ValueError, match="ground-truth labels must be in 0..2"):
        ev.update(torch.zeros(2, 2, dtype=torch.int64), torch.tensor([[0, 5], [1, 1]]))
    with pytest.raises(ValueError, match="predicted labels"):
        ev.update(torch.tensor([[0, 3]]), torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="differ in size"):
        ev.update(torch.zeros(2, 3, dtype=torch.int64), torch.zeros(3, 2, dtype=torch.int64))


def test_empty_and_reset():
    ev = SemSegEvaluator(2)
    with pytest.warns(UserWarning, match="no valid pixel"):
        m = ev.compute()
    assert all(math.isnan(v) for v in m.values())
    ev.update(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]))
    ev.reset()
    assert int(ev.confusion.sum()) == 0


def test_compute_sums_confusion_over_ranks(monkeypatch):
    """With torch.distributed on, compute() all-reduces the matrix (simulated: the other rank adds its own)."""
    other = SemSegEvaluator(3)
    other.update(torch.tensor([[2, 2]]), torch.tensor([[2, 1]]))
    calls = []

    def fake_all_reduce(t, op=None):
        calls.append(op)
        t += other.confusion.to(t.device)

    monkeypatch.setattr(semseg, "_dist_on", lambda: True)
    monkeypatch.setattr(semseg.dist, "get_backend", lambda: "gloo")
    monkeypatch.setattr(semseg.dist, "all_reduce", fake_all_reduce)
    ev = SemSegEvaluator(3)
    ev.update(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]))
    m = ev.compute()
    assert calls == [semseg.dist.ReduceOp.SUM]
    assert m["sem/aAcc"] == pytest.approx(3 / 4)
    assert int(ev.confusion.sum()) == 2  # the local matrix is left as it was


def test_build_evaluator_for_segmentor():
    ds = SimpleNamespace(class_names=["bg", "a", "b"])
    ev = build_evaluator(
        {"model": {"type": "Segmentor", "num_classes": None, "decode_head": {"type": "FPNSegHead", "ignore_index": 9}}},
        ds,
    )
    assert isinstance(ev, SemSegEvaluator) and ev.num_classes == 3 and ev.ignore_index == 9
    ev = build_evaluator(
        {"model": {"type": "X", "num_classes": 3}}, SimpleNamespace(with_sem_seg=True, class_names=None)
    )
    assert isinstance(ev, SemSegEvaluator) and ev.class_names == ["0", "1", "2"]


def test_with_real_coco_dataset_and_collate(tmp_path):
    """The dataset's semantic maps, fed back as predictions at the original size, score mIoU 1."""
    synthetic = pytest.importorskip("detkit.data.synthetic")
    coco_mod = pytest.importorskip("detkit.data.datasets.coco")
    collate = pytest.importorskip("detkit.data.collate").collate
    paths = synthetic.make_shapes(tmp_path / "shapes", num_train=0, num_val=2, size=(50, 70), seed=4)
    ds = coco_mod.CocoDataset(paths["val_ann_file"], paths["val_img_dir"], with_sem_seg=True, sem_background=True)
    ev = build_evaluator({"model": {"type": "Segmentor", "num_classes": None}}, ds)
    assert ev.num_classes == len(ds.class_names) + 1 and ev.class_names[0] == "background"
    batch = collate([ds[0], ds[1]])
    assert batch["targets"][0]["sem_seg"].shape == (64, 96)  # padded to a multiple of 32
    preds = [{"sem_seg": t["sem_seg"][:50, :70].clamp(max=ev.num_classes - 1)} for t in batch["targets"]]
    ev.process(batch, preds)
    m = ev.compute()
    assert m["sem/mIoU"] == 1.0 and m["sem/aAcc"] == 1.0
    assert int(ev.confusion.sum()) == int((torch.stack([t["sem_seg"] for t in batch["targets"]]) != 255).sum())
