"""The verdict of --verify: tolerances that fit float32 at the image's scale, borderline detections, mask IoU."""

import pytest
import torch

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
