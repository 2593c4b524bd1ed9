"""Batched, tensor-only selection steps: per-image top-k by ranks, padded outputs, sizes while tracing."""

import pytest
import torch
from torchvision.ops import nms

from detkit.ops.batched import (
    box_limits,
    clip_to_sizes,
    count_per_image,
    nms_by_image,
    nms_first,
    pad_per_image,
    per_image_topk,
    sorted_top_per_image,
    topk_count,
    unpad,
)


def test_per_image_topk_and_padding():
    image = torch.tensor([1, 0, 1, 1, 0, 2])  # items in descending score order
    sel, dest = per_image_topk(image, 3, 2)
    assert sel.tolist() == [0, 1, 2, 4, 5] and dest.tolist() == [2, 0, 3, 1, 4]
    values = torch.tensor([10.0, 11.0, 12.0, 13.0, 14.0, 15.0])[sel]
    (padded,) = pad_per_image((values,), (-1.0,), dest, 3, 2)
    assert padded.tolist() == [[11.0, 14.0], [10.0, 12.0], [15.0, -1.0]]
    counts = count_per_image(image[sel], 3)
    assert counts.tolist() == [2, 2, 1]
    assert [p["v"].tolist() for p in unpad({"v": padded}, counts)] == [[11.0, 14.0], [10.0, 12.0], [15.0]]


def test_clip_to_each_image():
    sizes = torch.tensor([[10, 20], [30, 5]])  # (h, w)
    boxes = torch.tensor([[[-3.0, 2.0, 25.0, 12.0]], [[1.0, -1.0, 8.0, 40.0]]])
    clipped = clip_to_sizes(boxes, box_limits(sizes)[:, None, :])
    assert clipped.tolist() == [[[0.0, 2.0, 20.0, 10.0]], [[1.0, 0.0, 5.0, 30.0]]]


@pytest.mark.filterwarnings("ignore:.*torch.jit.trace.*:FutureWarning")
def test_topk_count_stays_a_tensor_while_tracing():
    assert topk_count(5, 3) == 3 and topk_count(2, 3) == 2

    def top(x):
        return x.topk(topk_count(x.shape[1], 4), dim=1).values

    traced = torch.jit.trace(top, (torch.randn(2, 10),))
    assert traced(torch.randn(2, 3)).shape == (2, 3)  # fewer items than k: k follows the traced size
    assert traced(torch.randn(2, 30)).shape == (2, 4)


def test_nms_by_image_equals_one_call_over_disjoint_images():
    torch.manual_seed(0)
    xy = torch.rand(60, 2) * 40
    boxes = torch.cat([xy, xy + 5 + torch.rand(60, 2) * 20], 1)
    image = torch.randint(0, 3, (60,))
    shifted = boxes + (image.float() * 100)[:, None]  # images apart: they never overlap
    scores = torch.rand(60)
    keep = nms_by_image(shifted, scores, image, 3, 0.5)
    assert sorted(keep.tolist()) == sorted(nms(shifted, scores, 0.5).tolist())
    for i in range(3):  # by descending score within each image
        kept = scores[keep[image[keep] == i]]
        assert (kept[:-1] >= kept[1:]).all()


@pytest.mark.parametrize("spread,max_keep", [(40, 5), (40, 30), (400, 7), (4000, 50), (40, 1000)])
def test_nms_first_is_the_full_nms_cut_to_max_keep(spread, max_keep):
    g = torch.Generator().manual_seed(spread + max_keep)
    xy = torch.rand(600, 2, generator=g) * spread  # dense: most suppressed; sparse: most kept
    boxes = torch.cat([xy, xy + 5 + torch.rand(600, 2, generator=g) * 20], 1)
    scores = (torch.rand(600, generator=g) * 20).round() / 20  # many ties
    order = scores.argsort(descending=True, stable=True)
    boxes, scores = boxes[order], scores[order]
    full = nms(boxes, scores, 0.5)
    assert torch.equal(nms_first(boxes, scores, 0.5, max_keep), full[:max_keep])
    assert torch.equal(nms_first(boxes, scores, 0.5), full)
    image = torch.randint(0, 3, (600,), generator=g)
    shifted = boxes + (image.float() * 1e4)[:, None]
    kept = nms_by_image(shifted, scores, image, 3, 0.5, max_keep)
    ref = nms_by_image(shifted, scores, image, 3, 0.5)
    for i in range(3):  # per image: the first max_keep of the full NMS
        assert torch.equal(kept[image[kept] == i], ref[image[ref] == i][:max_keep])


@pytest.mark.parametrize("k", [1, 7, 40, 500])
def test_sorted_top_per_image_equals_the_full_stable_sort_cut_per_image(k):
    g = torch.Generator().manual_seed(k)
    image = torch.randint(0, 3, (600,), generator=g).sort().values  # grouped by image, as torch.where gives
    scores = (torch.rand(600, generator=g) * 10).round() / 10  # many ties, also at the k-th score
    order = scores.argsort(descending=True, stable=True)
    sel, _ = per_image_topk(image[order], 3, k)
    assert torch.equal(sorted_top_per_image(scores, image, 3, k), order[sel])
