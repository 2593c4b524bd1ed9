"""bce_with_logits_one_hot against torch's BCE-with-logits on the dense one-hot target."""

import pytest
import torch
import torch.nn.functional as F

from detkit.models.losses import bce
from detkit.models.losses.bce import bce_with_logits_one_hot


def _case(b=2, a=300, c=7, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(b, a, c, generator=g) * 4).to(dtype)
    logits[0, 0, :3] = torch.tensor([60.0, -60.0, 0.0], dtype=dtype)  # softplus' linear branch and its far tail
    labels = torch.randint(0, c, (b, a), generator=g)
    targets = torch.rand(b, a, generator=g, dtype=dtype) * (torch.rand(b, a, generator=g) < 0.3)
    return logits, labels, targets


def _dense(logits, labels, targets, weight=None):
    t = torch.zeros_like(logits).scatter_(-1, labels[..., None], targets[..., None].to(logits.dtype))
    return F.binary_cross_entropy_with_logits(logits, t, weight=weight, reduction="sum")


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("block", [bce.BLOCK, 64])  # 64 elements: many blocks, the last one partial
def test_equals_dense_bce_and_its_gradient(weighted, block, monkeypatch):
    monkeypatch.setattr(bce, "BLOCK", block)
    logits, labels, targets = _case()
    weight = torch.linspace(0.2, 2.0, logits.shape[-1], dtype=logits.dtype) if weighted else None
    x1, x2 = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    ours, ref = bce_with_logits_one_hot(x1, labels, targets, weight), _dense(x2, labels, targets, weight)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-12)
    (ours * 0.37).backward()
    (ref * 0.37).backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-12, atol=1e-14)


def test_float32_within_rounding_of_the_dense_loss():
    logits, labels, targets = _case(b=4, a=2000, c=80, dtype=torch.float32)
    x1, x2 = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    ours, ref = bce_with_logits_one_hot(x1, labels, targets), _dense(x2, labels, targets)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-5, atol=1e-6)


def test_no_targets_and_a_target_on_every_row():
    logits, labels, _ = _case(b=1, a=50, c=3)
    for targets in (torch.zeros(1, 50, dtype=logits.dtype), torch.ones(1, 50, dtype=logits.dtype)):
        x1, x2 = logits.clone().requires_grad_(), logits.clone().requires_grad_()
        ours, ref = bce_with_logits_one_hot(x1, labels, targets), _dense(x2, labels, targets)
        assert ours.item() == pytest.approx(ref.item(), rel=1e-12)
        ours.backward()
        ref.backward()
        torch.testing.assert_close(x1.grad, x2.grad)


def test_bf16_autocast_keeps_float32():
    logits, labels, targets = _case(b=2, a=400, c=80, dtype=torch.float32)
    weight = torch.rand(80)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = bce_with_logits_one_hot(logits, labels, targets, weight)  # the [N,C] @ [C] product is not bf16
    assert ours.dtype == torch.float32
    assert ours.item() == pytest.approx(_dense(logits, labels, targets, weight).item(), rel=1e-5)


def test_strided_logits():
    """A channel slice of wider logits (not viewable as flat rows) gives the same loss and gradient."""
    logits, labels, targets = _case(c=9)
    wide = torch.cat([logits, torch.randn(*logits.shape[:2], 3, dtype=logits.dtype)], -1).requires_grad_()
    ref = logits.clone().requires_grad_()
    ours = bce_with_logits_one_hot(wide[..., :9], labels, targets)
    assert ours.item() == pytest.approx(_dense(ref, labels, targets).item(), rel=1e-12)
    ours.backward()
    _dense(ref, labels, targets).backward()
    torch.testing.assert_close(wide.grad[..., :9], ref.grad)
    assert wide.grad[..., 9:].abs().sum() == 0
