"""RoIAlign of channels_last maps as weighted row sums equals torchvision's roi_align (values and gradients, up to
float summation order), reads the map in place and returns a channels_last gradient; NCHW maps, an adaptive
sampling ratio and export tracing keep torchvision's op."""

import pytest
import torch
from torchvision.ops import roi_align as tv_roi_align

from detkit.ops import roi_pool
from detkit.ops.roi_pool import boxes_to_rois, multiscale_roi_align
from detkit.ops.roi_rows import bilinear_bags, roi_align_rows, rows_ok

CL = torch.channels_last


def _rois(n: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """RoIs over a 160x192 input: inside, across and past every border, and thinner than a pixel."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=dtype) * 230 - 35
    wh = torch.rand(n, 2, generator=g, dtype=dtype) * 90
    rois = torch.cat([torch.randint(0, 2, (n, 1), generator=g).to(dtype), xy, xy + wh], 1)
    rois[:4, 3:] = rois[:4, 1:3] + 0.3  # below one pixel: torchvision's extent of at least 1
    rois[4] = torch.tensor([1.0, 150.0, 140.0, 200.0, 200.0], dtype=dtype)  # samples past the last row/column
    rois[5] = torch.tensor([0.0, -60.0, -70.0, -10.0, -5.0], dtype=dtype)  # wholly outside: zeros
    return rois


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("ratio", [1, 2, 3])
def test_rows_equal_torchvision_values_and_gradients(dtype, tol, ratio):
    torch.manual_seed(0)
    x = torch.randn(2, 24, 40, 48, dtype=dtype).contiguous(memory_format=CL).requires_grad_()
    rois = _rois(200, dtype)
    grad = torch.randn(200, 24, 7, 7, dtype=dtype)
    ref_x = x.detach().contiguous().requires_grad_()
    ref = tv_roi_align(ref_x, rois, 7, 0.25, ratio)
    (ref_grad,) = torch.autograd.grad(ref, ref_x, grad)

    rows = roi_align_rows(x, rois, 7, 0.25, ratio)  # [R,S,S,C]
    assert rows.shape == (200, 7, 7, 24)
    out = rows.permute(0, 3, 1, 2)
    (got_grad,) = torch.autograd.grad(out, x, grad)
    assert torch.allclose(out, ref, atol=tol, rtol=0) and torch.allclose(got_grad, ref_grad, atol=10 * tol, rtol=0)
    assert out[5].abs().max() == 0 and ref[5].abs().max() == 0
    assert got_grad.is_contiguous(memory_format=CL)  # the map's gradient in the map's layout


def test_bags_are_torchvisions_samples():
    """One RoI by hand: 1 bin, 1 sample at (x, y) = (1.25, 0.5) on a 3x4 map: 4 rows, bilinear weights."""
    rois = torch.tensor([[1.0, 0.5, 0.0, 2.0, 1.0]])  # image 1, a 1.5 x 1 box (extent clamped to >= 1)
    index, weight = bilinear_bags(rois, 1, 1.0, 1, 3, 4)
    base = 1 * 3 * 4  # image 1's first row
    assert index.tolist() == [[base + 1, base + 2, base + 5, base + 6]]
    assert torch.allclose(weight, torch.tensor([[0.375, 0.125, 0.375, 0.125]]))
    # a sample exactly on the right border (x = W = 4) is inside and takes the last column, as torchvision's
    edge = torch.tensor([[0.0, 3.5, 0.0, 4.5, 1.0]])
    index, weight = bilinear_bags(edge, 1, 1.0, 1, 3, 4)
    assert index.tolist() == [[3, 3, 7, 7]] and weight.tolist() == [[0.5, 0.0, 0.5, 0.0]]
    m = torch.arange(12.0).view(1, 1, 3, 4)
    assert (
        roi_align_rows(m.contiguous(memory_format=CL), edge, 1, 1.0, 1).item()
        == tv_roi_align(m, edge, 1, 1.0, 1).item()
        == 5.0
    )


def test_roi_align_dispatch(monkeypatch):
    """Channels_last CPU maps take the rows; NCHW maps, an adaptive ratio and tracing keep torchvision's op (NCHW
    bit for bit as before)."""
    torch.manual_seed(0)
    x = torch.randn(1, 16, 20, 24)
    rois = _rois(30, torch.float32)
    rois[:, 0] = 0
    xl = x.contiguous(memory_format=CL)
    assert rows_ok(xl, 2) and not rows_ok(x, 2) and not rows_ok(xl, 0) and not rows_ok(xl.half(), 2)
    calls = []
    real = roi_pool.roi_align_rows
    monkeypatch.setattr(roi_pool, "roi_align_rows", lambda *a: calls.append(1) or real(*a))
    out = roi_pool.roi_align(xl, rois, 7, 0.25, 2)
    assert calls and out.is_contiguous(memory_format=CL)
    assert torch.allclose(out, tv_roi_align(x, rois, 7, 0.25, 2), atol=1e-5)
    calls.clear()
    assert torch.equal(roi_pool.roi_align(x, rois, 7, 0.25, 2), tv_roi_align(x, rois, 7, 0.25, 2))
    assert torch.equal(roi_pool.roi_align(xl, rois, 7, 0.25, 0), tv_roi_align(x, rois, 7, 0.25, 0))
    traced = torch.jit.trace(lambda t: roi_pool.roi_align(t, rois, 7, 0.25, 2), (xl,), check_trace=False)
    assert not calls and torch.equal(traced(xl), tv_roi_align(x, rois, 7, 0.25, 2))


def test_multiscale_rows_equal_the_nchw_path_with_empty_levels():
    torch.manual_seed(0)
    strides = (4, 8, 16, 32)
    feats = [torch.randn(2, 8, 128 // s, 160 // s, requires_grad=True) for s in strides]
    boxes = [torch.tensor([[0.0, 0.0, 10.0, 12.0], [5.0, 5.0, 150.0, 120.0]]), torch.tensor([[20.0, 30.0, 90.0, 60.0]])]
    rois = boxes_to_rois(boxes)  # levels 0, 2 and 1: level 3 has no RoI
    ref = multiscale_roi_align(feats, rois, strides, 7, 2)
    cl = [f.contiguous(memory_format=CL) for f in feats]
    got = multiscale_roi_align(cl, rois, strides, 7, 2)
    assert got.is_contiguous(memory_format=CL) and torch.allclose(got, ref, atol=1e-5)
    grad = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, feats, grad)
    got_grads = torch.autograd.grad(got, feats, grad)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(got_grads, ref_grads))
    assert got_grads[3].abs().max() == 0
    assert multiscale_roi_align(cl, rois[:0], strides, 7, 2).shape == (0, 8, 7, 7)


def test_mask_rcnn_channels_last_step_matches_the_nchw_step(tiny_mask_rcnn, tiny_mask_batch):
    """A Mask R-CNN step with channels_last CPU training (maps pooled as rows, no NCHW copies) gives the losses
    and gradients of the NCHW step up to float rounding."""
    results = []
    for channels_last in ("cpu_train", False):
        m = tiny_mask_rcnn(channels_last)
        feats = []
        m.neck.register_forward_hook(lambda mod, i, out, feats=feats: feats.extend(out))
        torch.manual_seed(5)  # the samplers draw from the global generator
        losses = m.loss(tiny_mask_batch)
        sum(losses.values()).backward()
        assert all(f.is_contiguous(memory_format=CL) == (channels_last == "cpu_train") for f in feats)
        results.append((losses, {n: p.grad for n, p in m.named_parameters() if p.grad is not None}))
    (la, ga), (lb, gb) = results
    assert la.keys() == lb.keys() and all(torch.allclose(la[k], lb[k], rtol=1e-4, atol=1e-6) for k in la)
    assert ga.keys() == gb.keys()
    for n in ga:
        scale = gb[n].abs().max().clamp(min=1e-6)
        assert (ga[n] - gb[n]).abs().max() / scale < 1e-3, n
