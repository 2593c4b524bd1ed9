"""Matcher equals torchvision's, also batched with padded ground truth."""

import pytest
import torch
from torchvision.models.detection._utils import Matcher as TVMatcher

from detkit.ops.matcher import Matcher


def _quality(m, n, gen):
    # quantised so that ties (and exact threshold values) happen
    return (torch.rand(m, n, generator=gen) * 10).floor() / 10


@pytest.mark.parametrize("low_quality", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_equal_torchvision(low_quality, seed):
    gen = torch.Generator().manual_seed(seed)
    m = 2 + seed * 3
    # sparse (most pairs do not overlap), max 0.675 < 0.7: only low-quality matches can be positive
    q = _quality(m, 200, gen) * 0.75 * (torch.rand(m, 200, generator=gen) < 0.15)
    q[0, :3] = 0.9  # and one gt with real matches
    expected = TVMatcher(0.7, 0.3, low_quality)(q)
    got = Matcher(0.7, 0.3, low_quality)(q)
    assert torch.equal(got, expected)
    assert set(got.unique().tolist()) >= {-1, -2, 0}
    if low_quality:  # ties of each gt's best (< 0.7) prediction are matched too
        assert (got >= 0).sum() > 3


def test_batched_with_padding_equals_per_image():
    gen = torch.Generator().manual_seed(5)
    counts, n = [3, 0, 6], 150
    qs = [_quality(c, n, gen) for c in counts]
    batch = torch.full((3, 6, n), -1.0)
    valid = torch.zeros(3, 6, dtype=torch.bool)
    for i, (c, q) in enumerate(zip(counts, qs)):
        batch[i, :c], valid[i, :c] = q, True
    batch[0, 3:] = 0.0  # garbage in padded rows must be ignored
    matcher = Matcher(0.5, 0.4, allow_low_quality_matches=True)
    got = matcher(batch, valid)
    assert torch.equal(got[0], TVMatcher(0.5, 0.4, True)(qs[0]))
    assert torch.equal(got[2], TVMatcher(0.5, 0.4, True)(qs[2]))
    assert (got[1] == Matcher.BELOW_LOW_THRESHOLD).all()


def test_no_ground_truth_and_bad_thresholds():
    assert (Matcher(0.7, 0.3, True)(torch.zeros(0, 5)) == -1).all()
    assert Matcher(0.7, 0.3)(torch.zeros(2, 0, 5)).shape == (2, 5)
    with pytest.raises(ValueError, match="low_threshold"):
        Matcher(0.3, 0.7)
