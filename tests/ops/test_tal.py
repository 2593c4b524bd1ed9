"""Task-aligned assigner on hand-made cases."""

import torch

from detkit.ops.points import anchor_points, boxes_to_distance, distance_to_boxes
from detkit.ops.tal import points_in_boxes, task_aligned_assign


def _grid():
    points, strides = anchor_points([(4, 4)], [8])  # centres 4, 12, 20, 28
    return points, strides


def test_anchor_points_and_distance_roundtrip():
    points, strides = anchor_points([(2, 3), (1, 1)], [8, 16])
    assert points.shape == (7, 2) and strides.shape == (7, 1)
    assert points[:3].tolist() == [[4, 4], [12, 4], [20, 4]]
    assert points[6].tolist() == [8, 8] and strides[6].item() == 16
    boxes = torch.tensor([[1.0, 2.0, 30.0, 40.0]]).expand(7, 4)
    d = boxes_to_distance(points, boxes)
    assert torch.allclose(distance_to_boxes(points, d), boxes)
    assert boxes_to_distance(points, boxes, max_dist=5.0).max() <= 5.0


def test_points_inside_strictly():
    points, _ = _grid()
    inside = points_in_boxes(points, torch.tensor([[[0.0, 0.0, 16.0, 16.0]]]))
    assert inside.shape == (1, 1, 16)
    assert inside[0, 0].nonzero().flatten().tolist() == [0, 1, 4, 5]


def test_best_aligned_anchors_win_and_targets_are_normalised():
    points, _ = _grid()
    gt = torch.tensor([[[0.0, 0.0, 16.0, 16.0]]])
    scores = torch.full((1, 16, 2), 0.1)
    scores[0, 5, 1] = 0.9  # anchor 5 is confident about class 1
    pred = torch.tensor([0.0, 0.0, 16.0, 16.0]).expand(1, 16, 4).clone()
    pred[0, 0] = torch.tensor([0.0, 0.0, 8.0, 8.0])  # anchor 0 localises badly
    a = task_aligned_assign(scores, pred, points, torch.tensor([[1]]), gt, torch.tensor([[True]]), topk=2)
    assert a.fg[0].nonzero().flatten().tolist() == [1, 5] or a.fg[0].nonzero().flatten().tolist() == [4, 5]
    assert a.labels[0, 5] == 1 and torch.equal(a.boxes[0, 5], gt[0, 0])
    # the best-aligned anchor gets the best IoU among the positives (1.0 here); background gets 0
    assert torch.isclose(a.scores[0, 5, 1], torch.tensor(1.0))
    assert a.scores[0, 5, 0] == 0 and a.scores[0, ~a.fg[0]].abs().sum() == 0
    assert 0 < a.scores[0, a.fg[0], 1].min() < 1


def test_anchor_in_two_boxes_goes_to_the_better_overlap():
    points, _ = _grid()
    gt = torch.tensor([[[0.0, 0.0, 32.0, 32.0], [8.0, 8.0, 16.0, 16.0]]])
    pred = torch.tensor([9.0, 9.0, 15.0, 15.0]).expand(1, 16, 4).clone()  # every box fits the small gt
    scores = torch.full((1, 16, 3), 0.5)
    a = task_aligned_assign(scores, pred, points, torch.tensor([[0, 2]]), gt, torch.tensor([[True, True]]), topk=16)
    assert a.fg[0, 5] and a.gt_index[0, 5] == 1 and a.labels[0, 5] == 2  # anchor (12,12) is inside both
    assert (a.gt_index[0, a.fg[0]] == 0).sum() == 15


def test_padding_and_empty_images():
    points, _ = _grid()
    gt = torch.tensor([[[0.0, 0.0, 16.0, 16.0]], [[0.0, 0.0, 0.0, 0.0]]])
    valid = torch.tensor([[True], [False]])
    pred = torch.tensor([0.0, 0.0, 16.0, 16.0]).expand(2, 16, 4).clone()
    a = task_aligned_assign(torch.full((2, 16, 2), 0.5), pred, points, torch.tensor([[0], [0]]), gt, valid)
    assert a.fg[0].sum() == 4 and not a.fg[1].any() and a.scores[1].sum() == 0
    none = task_aligned_assign(
        torch.full((2, 16, 2), 0.5),
        pred,
        points,
        torch.zeros(2, 0, dtype=torch.long),
        torch.zeros(2, 0, 4),
        torch.zeros(2, 0, dtype=torch.bool),
    )
    assert not none.fg.any() and none.scores.shape == (2, 16, 2)


def _random_problem(seed: int, bsz: int = 3, num_gt: int = 6, num_classes: int = 7):
    """Predictions and padded ground truth on a 2-level grid; boxes overlap, image 2 has no real boxes."""
    g = torch.Generator().manual_seed(seed)
    points, _ = anchor_points([(8, 8), (4, 4)], [8, 16])  # 80 anchors in a 64x64 image
    xy = torch.rand(bsz, num_gt, 2, generator=g) * 40
    gt_boxes = torch.cat([xy, xy + 8 + torch.rand(bsz, num_gt, 2, generator=g) * 30], -1)
    gt_labels = torch.randint(0, num_classes, (bsz, num_gt), generator=g)
    gt_valid = torch.rand(bsz, num_gt, generator=g) > 0.3
    gt_valid[-1] = False
    pxy = points[None] - torch.rand(bsz, len(points), 2, generator=g) * 12
    pred_boxes = torch.cat([pxy, pxy + 4 + torch.rand(bsz, len(points), 2, generator=g) * 24], -1)
    pred_scores = torch.rand(bsz, len(points), num_classes, generator=g)
    return pred_scores, pred_boxes, points, gt_labels, gt_boxes, gt_valid


def test_assigner_equals_the_reference_bit_for_bit():
    """The assigner without [B,A,C] intermediates gives exactly what the one-hot version gave."""
    from detkit.benchmark.hotspots import assignments_equal, reference_assign

    for seed in range(6):
        args = _random_problem(seed)
        for topk in (3, 10):
            new = task_aligned_assign(*args, topk=topk)
            assert new.fg.any() and new.scores.shape == args[0].shape
            assert assignments_equal(new, reference_assign(*args, topk=topk)), (seed, topk)
    # each foreground anchor's target sits in its assigned class only (a zero metric gives a zero row)
    fg = new.fg
    on_label = new.scores[fg].gather(1, new.labels[fg][:, None])[:, 0]
    assert torch.equal(on_label, new.scores[fg].sum(-1)) and (on_label > 0).any()
    assert new.scores[~fg].abs().sum() == 0


def test_logits_in_give_the_assignment_of_their_sigmoid():
    """``logits=True`` applies the sigmoid to the gathered [B,A,G] entries: the same assignment, bit for bit."""
    from detkit.benchmark.hotspots import assignments_equal

    for seed in range(3):
        probs, *rest = _random_problem(seed)
        logits = torch.logit(probs.clamp(1e-4, 1 - 1e-4))
        ours = task_aligned_assign(logits, *rest, logits=True)
        assert ours.fg.any() and assignments_equal(ours, task_aligned_assign(logits.sigmoid(), *rest))
        assert ours.score.shape == ours.fg.shape and torch.equal(ours.scores.sum(-1), ours.score)


def test_points_in_boxes_matches_the_four_sides():
    points, _ = anchor_points([(8, 8)], [8])
    boxes = torch.tensor([[[4.0, 4.0, 20.0, 30.0], [0.0, 0.0, 64.0, 64.0], [12.0, 12.0, 12.0, 12.0]]])
    inside = points_in_boxes(points, boxes)
    x, y, b = points[:, 0], points[:, 1], boxes[0][:, None]
    expected = (x > b[..., 0]) & (y > b[..., 1]) & (x < b[..., 2]) & (y < b[..., 3])
    assert torch.equal(inside[0], expected) and inside[0, 1].all() and not inside[0, 2].any()
