"""YOLO blocks: C2f's in-place concatenation equals chunk + cat (YOLOv8's forward) on every path; ConvBNAct's SiLU
and its prepacked oneDNN inference op."""

import copy

import pytest
import torch

from detkit.models import fuse
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


def _conv_bn_act(act: bool = True) -> ConvBNAct:
    torch.manual_seed(0)
    m = ConvBNAct(8, 16, 3, s=2, act=act).eval()
    with torch.no_grad():
        m.bn.running_mean.uniform_(-0.5, 0.5)
        m.bn.running_var.uniform_(0.5, 1.5)
        m.bn.weight.uniform_(0.5, 1.5)
    return set_fused_inference(m, True)


@pytest.mark.skipif(not fuse.PACKED_AVAILABLE, reason="this torch build has no oneDNN weight prepacking")
@pytest.mark.parametrize("act", [True, False])
def test_channels_last_inference_runs_conv_bn_silu_as_one_prepacked_op(act):
    """ConvBNAct's fused CPU path on a channels_last input: one oneDNN op (conv, folded BN, SiLU) with weights
    packed once per input shape; the output equals the plain modules' up to float rounding."""
    m = _conv_bn_act(act)
    x = torch.randn(2, 8, 20, 24).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = m.act(m.bn(m.conv(x)))
        out = m(x)
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
        assert out.is_contiguous(memory_format=torch.channels_last)
        packed = fuse._PACKED[m.conv]
        first = packed[tuple(x.shape)][1]
        m(x)
        assert packed[tuple(x.shape)][1] is first  # reused for the same shape
        m.conv.weight.mul_(2)  # an in-place update (a loaded checkpoint, EMA): repacked, new output
        torch.testing.assert_close(m(x), m.act(m.bn(m.conv(x))), rtol=1e-4, atol=1e-4)
        assert packed[tuple(x.shape)][1] is not first
        for h in range(4, 4 + fuse.MAX_PACKED_SHAPES):  # other shapes: at most MAX_PACKED_SHAPES kept
            m(torch.randn(1, 8, h, h).contiguous(memory_format=torch.channels_last))
        assert len(packed) == fuse.MAX_PACKED_SHAPES and tuple(x.shape) not in packed


@pytest.mark.skipif(not fuse.PACKED_AVAILABLE, reason="this torch build has no oneDNN weight prepacking")
def test_prepacked_op_is_only_for_channels_last_inference():
    """NCHW inputs, autograd, train-mode BN and tracing (ONNX export) run the plain ops."""
    m = _conv_bn_act()
    cl = torch.randn(1, 8, 12, 12).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert fuse.conv_silu_packed(cl, m.conv, m.bn) is not None
        assert fuse.conv_silu_packed(cl.contiguous(), m.conv, m.bn) is None  # NCHW
        m.bn.train()
        assert fuse.conv_silu_packed(cl, m.conv, m.bn) is None  # batch statistics: not foldable
        m.bn.eval()
    assert fuse.conv_silu_packed(cl, m.conv, m.bn) is None  # autograd: the parameters require grad
    wide = torch.randn(1, 24, 12, 12).contiguous(memory_format=torch.channels_last)
    part = wide[:, 8:16]  # a channel slice of a channels_last map (C2f's bottleneck inputs): packed too
    with torch.no_grad():
        torch.testing.assert_close(
            fuse.conv_silu_packed(part, m.conv, m.bn), m.act(m.bn(m.conv(part))), rtol=1e-4, atol=1e-4
        )
    seen = []

    def traced_forward(t):
        seen.append(fuse.conv_silu_packed(t, m.conv, m.bn))
        return m(t)

    with torch.no_grad():
        torch.jit.trace(traced_forward, (cl,), check_trace=False)
    assert seen == [None]


@pytest.mark.skipif(not fuse.PACKED_AVAILABLE, reason="this torch build has no oneDNN weight prepacking")
def test_a_model_that_ran_the_prepacked_op_can_be_copied_and_saved(tmp_path):
    """oneDNN's packed weights have no storage: they live outside the module, so deepcopy (EMA) and torch.save of
    the whole model still work after inference, and the copy packs its own."""
    m = _conv_bn_act()
    x = torch.randn(1, 8, 12, 12).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        y = m(x)
    twin = copy.deepcopy(m)
    torch.save(m, tmp_path / "model.pt")
    with torch.inference_mode():
        torch.testing.assert_close(twin(x), y)
    assert fuse._PACKED[twin.conv] and fuse._PACKED[twin.conv] is not fuse._PACKED[m.conv]
