"""YOLO blocks: C2f's in-place concatenation equals chunk + cat (YOLOv8's forward) on every path; ConvBNAct's SiLU."""

import copy

import pytest
import torch

from detkit.models.blocks import C2f, ConvBNAct
from detkit.models.fuse import set_fused_inference


def _c2f(shortcut: bool, n: int = 2) -> C2f:
    torch.manual_seed(0)
    block = C2f(16, 24, n=n, shortcut=shortcut).eval()
    with torch.no_grad():
        for m in block.modules():
            if isinstance(m, torch.nn.BatchNorm2d):  # non-trivial statistics: folding is visible
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
    return block


@pytest.mark.parametrize("shortcut", [True, False])
@pytest.mark.parametrize("fused,channels_last", [(False, False), (True, False), (True, True)])
def test_in_place_concat_equals_chunk_cat(shortcut, fused, channels_last):
    block = _c2f(shortcut)
    set_fused_inference(block, fused)
    x = torch.randn(2, 16, 12, 10)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = block.forward_chunk_cat(x)
        parts = block.concat_in_place(x)
        out = block(x)  # no autograd: the in-place path
    assert parts.shape == (2, 4 * 12, 12, 10) and parts.is_contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    if not fused:
        assert torch.equal(out, ref)  # the same ops on the same values


def test_autograd_takes_chunk_cat_and_gets_the_same_gradients():
    block = _c2f(True).train()
    twin = copy.deepcopy(block)
    x = torch.randn(2, 16, 8, 8)
    block(x).square().sum().backward()
    twin.forward_chunk_cat(x).square().sum().backward()
    for (name, p), q in zip(block.named_parameters(), twin.parameters()):
        assert torch.equal(p.grad, q.grad), name


def test_conv_bn_act_under_autograd_does_not_copy_for_silu():
    """Training: SiLU out of place (in place, autograd would clone its input for the backward); the output and
    gradients are the plain modules'; without autograd SiLU still runs in place."""
    from torch.profiler import profile

    torch.manual_seed(0)
    m = ConvBNAct(4, 8, 3).train()
    x = torch.randn(2, 4, 16, 16, requires_grad=True)
    with profile() as prof:
        y = m(x)
        y.sum().backward()
    ops = {e.key: e.count for e in prof.key_averages()}
    assert "aten::clone" not in ops and "aten::silu" in ops and "aten::silu_" not in ops
    x2 = x.detach().clone().requires_grad_()
    ref = torch.nn.functional.silu(m.bn(m.conv(x2)))
    ref.sum().backward()
    torch.testing.assert_close(y, ref)
    torch.testing.assert_close(x.grad, x2.grad)
    with torch.no_grad(), profile() as prof:
        m.eval()(x)
    assert "aten::silu_" in {e.key for e in prof.key_averages()}
