"""Anchors equal torchvision's AnchorGenerator."""

import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from detkit.ops.anchors import anchor_strides, base_anchors, make_anchors

SIZES = ((32,), (64,), (128,), (256,), (512,))
RATIOS = ((0.5, 1.0, 2.0),) * 5


def _feature_sizes(h, w):
    # sizes as a ResNet-FPN produces them for a padded batch (ceil division, then maxpool for P6)
    return [(-(-h // s), -(-w // s)) for s in (4, 8, 16, 32, 64)]


@pytest.mark.parametrize("hw", [(64, 96), (100, 132), (128, 128)])
def test_make_anchors_equals_torchvision(hw):
    h, w = hw
    fsizes = _feature_sizes(h, w)
    feats = [torch.zeros(2, 1, fh, fw) for fh, fw in fsizes]
    images = ImageList(torch.zeros(2, 3, h, w), [(h, w), (h - 10, w - 20)])
    expected = AnchorGenerator(SIZES, RATIOS)(images, feats)
    ours = make_anchors(fsizes, anchor_strides((h, w), fsizes), SIZES, RATIOS)
    assert [a.shape[0] for a in ours] == [fh * fw * 3 for fh, fw in fsizes]
    for per_image in expected:  # torchvision repeats the same anchors for every image
        assert torch.equal(torch.cat(ours), per_image)


def test_multiple_sizes_per_level_and_shared_ratios():
    sizes, ratios = ((16, 32, 64), (64, 128, 256)), (0.5, 1.0, 2.0)
    fsizes = [(8, 10), (4, 5)]
    images = ImageList(torch.zeros(1, 3, 64, 80), [(64, 80)])
    expected = AnchorGenerator(sizes, (ratios, ratios))(images, [torch.zeros(1, 1, *s) for s in fsizes])[0]
    ours = make_anchors(fsizes, anchor_strides((64, 80), fsizes), sizes, ratios)
    assert torch.equal(torch.cat(ours), expected)


def test_base_anchors_are_rounded_and_centred():
    b = base_anchors((32,), (0.5, 1.0, 2.0))
    assert torch.equal(b, b.round())
    assert torch.equal(b[1], torch.tensor([-16.0, -16.0, 16.0, 16.0]))
    # ratio = height / width
    hw = b[:, 2:] - b[:, :2]
    assert hw[0, 1] < hw[0, 0] and hw[2, 1] > hw[2, 0]


def test_cache_and_errors():
    fsizes = [(4, 4)]
    a = make_anchors(fsizes, [8], ((32,),), ((1.0,),))
    assert make_anchors(fsizes, [8], ((32,),), ((1.0,),)) is a
    assert make_anchors(fsizes, [16], ((32,),), ((1.0,),)) is not a
    with pytest.raises(ValueError, match="one anchor size tuple per feature level"):
        make_anchors([(4, 4), (2, 2)], [8, 16], ((32,),), ((1.0,),))
