"""The verdict of --verify: tolerances that fit float32 at the image's scale, borderline detections, mask IoU."""

import copy

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from detkit.export.verify import box_tolerance, compare_predictions, mask_ious, passes


def _det(boxes, scores, labels=None, masks=None):
    d = {"boxes": torch.tensor(boxes, dtype=torch.float32), "scores": torch.tensor(scores)}
    d["labels"] = torch.tensor(labels if labels is not None else [0] * len(scores))
    if masks is not None:
        d["masks"] = masks
    return d


def test_box_tolerance_grows_with_the_image():
    assert box_tolerance((320, 320)) == pytest.approx(0.033)
    assert box_tolerance((800, 1333)) == pytest.approx(0.1343)
    assert box_tolerance((320, 320), atol=0.5, rtol=0.0) == 0.5


def test_a_float32_size_difference_passes_and_a_real_one_fails():
    ref = [_det([[10.0, 20.0, 200.0, 300.0]], [0.9])]
    close = [_det([[10.02, 20.0, 200.0, 300.0]], [0.9])]  # 0.02 px: float32 rounding of a trained model
    stats = compare_predictions(ref, close, image_sizes=[(320, 320)])
    assert stats["boxes_over_tol"] == 0 and stats["max_box_diff"] == pytest.approx(0.02, abs=1e-4) and passes(stats)
    # an absolute 1e-3 px tolerance (the old verdict) reports the same export as FAILED
    assert not passes(compare_predictions(ref, close, image_sizes=[(320, 320)], rtol=0.0))
    wrong = [_det([[10.5, 20.0, 200.0, 300.0]], [0.9])]  # half a pixel: a bug, not rounding
    stats = compare_predictions(ref, wrong, image_sizes=[(320, 320)])
    assert stats["matched"] == 1 and stats["boxes_over_tol"] == 1 and not passes(stats)
    assert not passes(compare_predictions(ref, [_det([[10.0, 20.0, 200.0, 300.0]], [0.85])], image_sizes=[(320, 320)]))


def test_detections_at_a_score_cut_are_borderline():
    ref = [_det([[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.0503])]
    other = [_det([[0, 0, 10, 10]], [0.9])]
    stats = compare_predictions(ref, other, image_sizes=[(64, 64)], score_thr=0.05)
    assert stats["unmatched"] == 1 and stats["borderline"] == 1 and passes(stats)
    lone = [_det([[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.3])]  # far above the threshold: a real miss
    stats = compare_predictions(lone, other, image_sizes=[(64, 64)], score_thr=0.05)
    assert stats["borderline"] == 0 and not passes(stats)
    # both images full (max_per_img 2): the last kept detection differs between the sides by 1e-4 in score
    full_ref = [_det([[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.4001])]
    full_other = [_det([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.4])]
    stats = compare_predictions(full_ref, full_other, image_sizes=[(64, 64)], score_thr=0.05, max_per_img=2)
    assert stats["unmatched"] == 2 and stats["borderline"] == 2 and passes(stats)
    stats = compare_predictions(full_ref, full_other, image_sizes=[(64, 64)], score_thr=0.05, max_per_img=3)
    assert stats["borderline"] == 0 and not passes(stats)


def test_mask_iou_of_matched_pairs():
    a = torch.zeros(2, 8, 8, dtype=torch.bool)
    a[0, 2:6, 2:6] = True  # 16 px
    b = a.clone()
    b[0, 2, 2] = False  # one pixel off: IoU 15/16
    assert mask_ious(a, b).tolist() == [pytest.approx(15 / 16), 1.0]  # two empty masks agree
    ref = [_det([[0, 0, 8, 8], [1, 1, 7, 7]], [0.9, 0.8], masks=a)]
    other = [_det([[0, 0, 8, 8], [1, 1, 7, 7]], [0.9, 0.8], masks=b)]
    stats = compare_predictions(ref, other, image_sizes=[(8, 8)])
    assert stats["mask_pairs"] == 2 and stats["min_mask_iou"] == pytest.approx(15 / 16)
    assert passes(stats, mask_iou=0.9) and not passes(stats, mask_iou=0.95)


def test_class_predictions_compare_top_k_order_and_probabilities():
    from detkit.export.verify import compare_class_predictions, passes

    def pred(scores, k=3):
        s = torch.tensor(scores)
        return {"scores": s, "labels": s.topk(k).indices}

    ref = [pred([0.6, 0.3, 0.1, 0.0]), pred([0.40, 0.3995, 0.2, 0.0005])]
    same = compare_class_predictions(ref, [pred([0.6, 0.3, 0.1, 0.0]), pred([0.40, 0.3995, 0.2, 0.0005])])
    assert same["topk_equal"] == 2 and same["top1_equal"] == 2 and passes(same)
    # classes 0 and 1 of the second image tie within atol: their swapped order is borderline, not a failure
    tied = [ref[0], {"scores": torch.tensor([0.3996, 0.3999, 0.2, 0.0005]), "labels": torch.tensor([1, 0, 2])}]
    stats = compare_class_predictions(ref, tied, atol=1e-3)
    assert stats["topk_equal"] == 1 and stats["borderline"] == 1 and stats["top1_equal"] == 1 and passes(stats)
    wrong = [pred([0.1, 0.3, 0.6, 0.0]), ref[1]]
    stats = compare_class_predictions(ref, wrong)
    assert stats["topk_equal"] == 1 and stats["borderline"] == 0 and not passes(stats)
    drift = compare_class_predictions(ref, [pred([0.602, 0.298, 0.1, 0.0]), ref[1]], atol=1e-3)
    assert drift["topk_equal"] == 2 and drift["max_score_diff"] == pytest.approx(0.002, abs=1e-6) and not passes(drift)


# Freshly trained YOLO weights: duplicates of one object score within 1e-7 of each other, so which one NMS keeps
# is float rounding. PyTorch keeps A, onnxruntime keeps B (PyTorch's candidate B, suppressed there by A).
A, B = [0.0, 0.0, 320.0, 320.0], [0.0, 32.0, 320.0, 320.0]  # IoU 0.9: matched by IoU, 32 px apart
C = [50.0, 60.0, 150.0, 170.0]  # a detection both sides keep
LOW = [0.0, 0.0, 320.0, 280.0]  # a duplicate of A (IoU 0.875) that scores 1e-3 lower
FAR = [200.0, 200.0, 240.0, 240.0]  # a box that ties with A but does not overlap it
B2 = [0.0, 0.0, 320.0, 250.0]  # another duplicate of A tied with it (IoU 0.78 with A, 0.68 with B)
CANDIDATES = {  # PyTorch's dense outputs before NMS (6 anchors, 2 classes)
    "boxes": torch.tensor([A, B, C, LOW, FAR, B2]),
    "scores": torch.tensor(
        [
            [0.0030531, 0.001],
            [0.0030525, 0.0030526],
            [0.9, 0.002],
            [0.0020, 0.001],
            [0.0030527, 0.001],
            [0.0030524, 0.001],
        ]
    ),
}


def _swap(b=B, score=0.0030526, label=0, c=C):
    """onnxruntime's detections: C and another duplicate than PyTorch's A (the default: B, near-tied)."""
    return [_det([c, b], [0.9, score], [0, label])]


@pytest.mark.parametrize("b, score", [(B, 0.0030526), (B2, 0.0030524)], ids=["matched-32px-apart", "unmatched"])
def test_near_tied_duplicates_kept_differently_are_near_tie(b, score):
    ref, other, sizes = [_det([C, A], [0.9, 0.0030531])], _swap(b=b, score=score), [(320, 320)]
    stats = compare_predictions(ref, other, image_sizes=sizes)  # without PyTorch's candidates: a failure
    assert not passes(stats) and stats["near_tie"] == 0
    stats = compare_predictions(ref, other, image_sizes=sizes, candidates=[CANDIDATES])
    assert stats["near_tie"] == 2 and stats["matched"] == 1 and stats["unmatched"] == 2 and passes(stats)
    assert stats["boxes_over_tol"] == 0 and stats["max_box_diff"] == 0.0


@pytest.mark.parametrize(
    "other",
    [
        [_det([[55.0, 65.0, 155.0, 175.0], [5.0, 37.0, 325.0, 325.0]], [0.9, 0.0030526])],  # every box 5 px off
        _swap(b=[0.0, 32.1, 320.0, 320.0]),  # 0.1 px off: no PyTorch candidate there
        _swap(score=0.0130526),  # score off by 1e-2
        _swap(label=1, score=0.001),  # another class: B's class 1 scores 0.001 in PyTorch
        _swap(label=1),  # B's class 1 ties with A's class 0 too, but class-aware NMS never trades classes
        _swap(b=LOW, score=0.0020),  # a PyTorch candidate and a duplicate of A, but not tied with it
        _swap(b=FAR, score=0.0030527),  # a PyTorch candidate tied with A, but no duplicate of it (IoU 0)
        _swap(score=0.0030325),  # B's box, 2e-5 below: a score difference rounding does not make
    ],
    ids=["shift-5px", "shift-0.1px", "score+1e-2", "class", "tied-class", "not-tied", "no-overlap", "2e-5-apart"],
)
def test_a_wrong_export_is_not_a_near_tie(other):
    ref = [_det([C, A], [0.9, 0.0030531])]
    stats = compare_predictions(ref, other, image_sizes=[(320, 320)], candidates=[CANDIDATES])
    assert stats["near_tie"] == 0 and not passes(stats)


def test_one_near_tie_explains_one_detection():
    """PyTorch keeps A; onnxruntime keeps two of its tied duplicates: one pair is a near-tie, the other box is
    a difference (one missing PyTorch detection does not explain two extra ones)."""
    ref = [_det([C, A], [0.9, 0.0030531])]
    other = [_det([C, B, B2], [0.9, 0.0030526, 0.0030524])]
    stats = compare_predictions(ref, other, image_sizes=[(320, 320)], candidates=[CANDIDATES])
    assert stats["near_tie"] == 2 and stats["unmatched"] == 3 and not passes(stats)


def _tied_yolo(yolo):
    """A copy of the tiny YOLO whose every anchor scores sigmoid(1) for every class: duplicates tie exactly."""
    model = copy.deepcopy(yolo)
    for branch in model.head.cls_branch:
        torch.nn.init.zeros_(branch[-1].weight)
        torch.nn.init.constant_(branch[-1].bias, 1.0)
    return model


def _suppressed_duplicate(model, images):
    """(box A that PyTorch keeps, a box B of its dense outputs that its NMS suppressed, IoU(A, B) in [0.5, 0.9))."""
    from detkit.export import get_export_module
    from detkit.export.verify import _batches

    batch = next(_batches(model, images, 1, 32, None))
    module = get_export_module(model, nms=False)
    with torch.no_grad():
        kept = model.predict(batch)[0]["boxes"]
        dense = module(*module.inputs_from_batch(batch))[0][0]
    iou = box_iou(kept, dense)
    iou[:, (iou > 0.99).any(0)] = 0  # not a kept box
    k, a = divmod(int(torch.where((iou >= 0.5) & (iou < 0.9), iou, 0).argmax()), iou.shape[1])
    assert 0.5 <= iou[k, a] < 0.9
    return kept[k], dense[a]


@pytest.mark.parametrize("offset", [0.0, 5.0])
def test_verify_onnx_takes_the_candidates_from_pytorchs_dense_outputs(yolo, shapes, tmp_path, monkeypatch, offset):
    """onnxruntime's outputs with one detection swapped for a duplicate that PyTorch's NMS suppressed: near-tie;
    the same swap with the box 5 px off (no PyTorch candidate): FAILED."""
    pytest.importorskip("onnxruntime")
    from detkit.export import export_onnx, verify

    model, images = _tied_yolo(yolo), shapes([(128, 128)])
    path = export_onnx(model, tmp_path / "yolo.onnx", image_size=(128, 128), batch_size=1)
    a, b = _suppressed_duplicate(model, images)
    real_run = verify.run_onnx

    def swapped(*args):
        boxes, *rest = (np.array(o) for o in real_run(*args))
        slot = np.abs(boxes[0] - a.numpy()).max(1).argmin()
        boxes[0, slot] = b.numpy() + offset
        return [boxes, *rest]

    monkeypatch.setattr(verify, "run_onnx", swapped)
    stats = verify.verify_onnx(model, path, images, batch_size=1)
    assert stats["ok"] is (offset == 0)
    assert stats["num_ref"] > 2 and stats["matched"] == stats["num_ref"] - 1
    assert stats["near_tie"] == (2 if offset == 0 else 0)


def test_the_verdict_line_counts_near_tied_duplicates():
    from detkit.cli.export import verify_summary

    stats = dict(
        images=4,
        num_ref=10,
        num_other=10,
        matched=8,
        borderline=0,
        near_tie=2,
        max_box_diff=1e-4,
        box_tol=3e-2,
        max_score_diff=1e-7,
        ok=True,
    )
    line = verify_summary(stats)
    assert "8 matched (2 more near-tied duplicates that NMS kept differently)" in line and line.endswith(": OK")
    assert "near-tied" not in verify_summary({**stats, "near_tie": 0})
