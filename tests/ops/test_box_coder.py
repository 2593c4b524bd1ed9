"""BoxCoder equals torchvision's encode/decode."""

import math

import pytest
import torch
from torchvision.models.detection._utils import BoxCoder as TVBoxCoder

from detkit.ops.box_coder import BoxCoder


def _boxes(n, gen):
    xy = torch.rand(n, 2, generator=gen) * 200
    wh = torch.rand(n, 2, generator=gen) * 100 + 1
    return torch.cat([xy, xy + wh], 1)


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_encode_decode_equal_torchvision(weights):
    gen = torch.Generator().manual_seed(0)
    ref, gt = _boxes(500, gen), _boxes(500, gen)
    ours, tv = BoxCoder(weights), TVBoxCoder(weights)
    enc = ours.encode(gt, ref)
    torch.testing.assert_close(enc, tv.encode_single(gt, ref), rtol=0, atol=1e-6)
    deltas = torch.randn(500, 4 * 3, generator=gen)  # 3 boxes per reference (per-class deltas)
    dec = ours.decode(deltas, ref)
    assert dec.shape == (500, 12)
    torch.testing.assert_close(dec, tv.decode_single(deltas, ref), rtol=1e-6, atol=1e-5)
    ok = (enc[:, 2:] / torch.tensor(weights[2:])).amax(1) < ours.clip  # not clipped before exp
    torch.testing.assert_close(ours.decode(enc, ref)[ok], gt[ok], rtol=0, atol=1e-3)  # round trip


def test_decode_clips_large_scale_and_broadcasts():
    coder = BoxCoder()
    ref = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    huge = torch.tensor([[0.0, 0.0, 100.0, 100.0]])
    w = coder.decode(huge, ref)[0, 2] - coder.decode(huge, ref)[0, 0]
    assert torch.isclose(w, torch.tensor(10 * 1000 / 16))
    assert coder.clip == pytest.approx(math.log(1000 / 16))
    # a batch [B, N, 4] of deltas against shared references [N, 4] equals the flat call
    gen = torch.Generator().manual_seed(1)
    refs, deltas = _boxes(7, gen), torch.randn(3, 7, 4, generator=gen)
    batched = coder.decode(deltas, refs)
    flat = torch.stack([coder.decode(d, refs) for d in deltas])
    assert torch.equal(batched, flat)
