import torch

from detkit.ops.points import anchor_points, maps_to_anchors


def test_maps_to_anchors_same_values_in_both_layouts_and_anchor_order():
    maps = [torch.randn(2, 5, h, w) for h, w in [(4, 6), (2, 3), (1, 2)]]
    plain = maps_to_anchors(maps)
    points, _ = anchor_points([(4, 6), (2, 3), (1, 2)], [8, 16, 32])
    assert plain.shape == (2, len(points), 5)
    # anchor 7 = level 0, row 1, column 1; anchor 24 + 4 = level 1, row 1, column 1
    assert torch.equal(plain[:, 7], maps[0][:, :, 1, 1]) and torch.equal(plain[:, 28], maps[1][:, :, 1, 1])
    cl = [m.contiguous(memory_format=torch.channels_last) for m in maps]
    flat = maps_to_anchors(cl)
    assert torch.equal(flat, plain) and flat.is_contiguous()  # one [B,A,C] copy, rows of C values
    # channel slices of channels_last maps (YOLOHead.flatten splits bins from logits) take the same route
    halves = [m.split([2, 3], 1) for m in cl]
    first, second = maps_to_anchors([h[0] for h in halves]), maps_to_anchors([h[1] for h in halves])
    assert torch.equal(torch.cat([first, second], -1), plain) and first.is_contiguous() and second.is_contiguous()


def test_maps_to_anchors_gradients_reach_channels_last_maps():
    maps = [torch.randn(1, 3, 2, 2).contiguous(memory_format=torch.channels_last).requires_grad_() for _ in range(2)]
    weight = torch.randn(1, 8, 3)
    (maps_to_anchors(maps) * weight).sum().backward()
    assert torch.equal(maps[1].grad[0, :, 1, 0], weight[0, 4 + 2])
