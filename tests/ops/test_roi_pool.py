"""multiscale_roi_align equals torchvision's MultiScaleRoIAlign for box lists and padded boxes; the channel-parallel
roi_align equals torchvision's roi_align bit for bit."""

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops import roi_align as tv_roi_align

from detkit.ops import roi_pool
from detkit.ops.roi_pool import boxes_to_rois, multiscale_roi_align


def test_equals_torchvision_multiscale_roi_align():
    torch.manual_seed(0)
    strides = (4, 8, 16, 32)
    feats = [torch.randn(2, 8, 128 // s, 160 // s) for s in strides]
    boxes = [torch.tensor([[0.0, 0.0, 10.0, 12.0], [5.0, 5.0, 150.0, 120.0]]), torch.tensor([[20.0, 30.0, 90.0, 60.0]])]
    ref = MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)(
        {str(i): f for i, f in enumerate(feats)}, boxes, [(128, 160)] * 2
    )
    got = multiscale_roi_align(feats, boxes_to_rois(boxes), strides, 7, 2)
    assert torch.equal(got, ref)
    # the same boxes padded to [B,K,4]: the filled rows are the same RoIs
    padded = torch.zeros(2, 2, 4)
    padded[0], padded[1, :1] = boxes[0], boxes[1]
    rois = boxes_to_rois(padded)
    assert rois[:, 0].tolist() == [0, 0, 1, 1]
    assert torch.equal(multiscale_roi_align(feats, rois, strides, 7, 2)[:3], ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_channel_parallel_roi_align_is_torchvisions_bit_for_bit(dtype, monkeypatch):
    """On a CPU with several threads the channel groups run in parallel threads: forward and gradient are
    torchvision's exactly, whatever the number of groups (uneven ones included)."""
    torch.manual_seed(0)
    x = torch.randn(2, 50, 40, 48, dtype=dtype, requires_grad=True)
    xy = torch.rand(30, 2, dtype=dtype) * 150
    rois = torch.cat([torch.randint(0, 2, (30, 1)).to(dtype), xy, xy + torch.rand(30, 2, dtype=dtype) * 60 + 1], 1)
    grad = torch.randn(30, 50, 7, 7, dtype=dtype)
    ref = tv_roi_align(x, rois, 7, 0.25, 2)
    (ref_grad,) = torch.autograd.grad(ref, x, grad)
    monkeypatch.setattr(roi_pool, "MIN_GROUP_CHANNELS", 4)
    for threads in (1, 2, 3):
        monkeypatch.setattr(torch, "get_num_threads", lambda n=threads: n)
        assert len(roi_pool._groups(50)) == threads
        out = roi_pool.roi_align(x, rois, 7, 0.25, 2)
        assert (out.grad_fn is not None) and (("ChannelParallel" in type(out.grad_fn).__name__) == (threads > 1))
        (got_grad,) = torch.autograd.grad(out, x, grad)
        assert torch.equal(out, ref) and torch.equal(got_grad, ref_grad)
        with torch.no_grad():
            assert torch.equal(roi_pool.roi_align(x, rois, 7, 0.25, 2), ref)
    # no RoIs: torchvision's own call
    assert roi_pool.roi_align(x, rois[:0], 7, 0.25, 2).shape == (0, 50, 7, 7)


def test_channel_parallel_roi_align_under_autocast_is_torchvisions(monkeypatch):
    """Under CPU autocast, bf16 features are pooled in float32 and cast back, as torchvision's autocast kernel does."""
    torch.manual_seed(0)
    x = torch.randn(1, 64, 32, 32).to(torch.bfloat16).requires_grad_()
    rois = torch.tensor([[0.0, 3.0, 4.0, 60.0, 50.0], [0.0, 10.0, 0.0, 30.0, 100.0]])
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = tv_roi_align(x, rois, 7, 0.25, 2)
        out = roi_pool.roi_align(x, rois, 7, 0.25, 2)
    assert out.dtype == ref.dtype == torch.bfloat16 and torch.equal(out, ref)
    assert "ChannelParallel" in str(out.grad_fn.next_functions)
    grad = torch.randn(2, 64, 7, 7).to(torch.bfloat16)
    assert torch.equal(torch.autograd.grad(out, x, grad)[0], torch.autograd.grad(ref, x, grad)[0])


def test_mask_rcnn_training_step_is_the_same_with_the_parallel_roi_align(monkeypatch, tiny_mask_rcnn, tiny_mask_batch):
    """A whole Mask R-CNN loss and backward (box and mask pooling) through the parallel path equals the same step
    through torchvision's call alone, losses and every gradient bit for bit."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    model, batch = tiny_mask_rcnn(), tiny_mask_batch
    used = []
    real_apply = roi_pool._ChannelParallelRoIAlign.apply
    monkeypatch.setattr(roi_pool._ChannelParallelRoIAlign, "apply", lambda *a: used.append(a[2]) or real_apply(*a))
    results = []
    for min_channels in (16, 10**9):  # parallel (2 groups of 16 channels), then torchvision's call alone
        monkeypatch.setattr(roi_pool, "MIN_GROUP_CHANNELS", min_channels)
        model.zero_grad(set_to_none=True)
        torch.manual_seed(5)  # the samplers draw from the global generator
        losses = model.loss(batch)
        sum(losses.values()).backward()
        results.append((losses, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
        if min_channels == 16:
            assert {7, 14} <= set(used)  # box (7x7) and mask (14x14) pooling went through the parallel path
    (la, ga), (lb, gb) = results
    assert {k: float(v.detach()) for k, v in la.items()} == {k: float(v.detach()) for k, v in lb.items()}
    assert ga.keys() == gb.keys() and all(torch.equal(ga[n], gb[n]) for n in ga)
