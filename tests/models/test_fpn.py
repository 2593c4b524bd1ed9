"""FPN equals torchvision's FeaturePyramidNetwork with the same weights."""

from collections import OrderedDict

import pytest
import torch
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool, LastLevelP6P7

from detkit.models.necks.fpn import FPN
from detkit.registry import NECKS

IN_CH = [8, 16, 32, 64]


def _inputs():
    torch.manual_seed(0)
    # odd sizes: the top-down path must upsample to each lateral's exact size
    return [torch.randn(2, c, s, s + 2) for c, s in zip(IN_CH, (33, 17, 9, 5))]


def _copy_to_torchvision(fpn, tv):
    with torch.no_grad():
        for i in range(len(IN_CH)):
            tv.inner_blocks[i][0].weight.copy_(fpn.lateral_convs[i].weight)
            tv.inner_blocks[i][0].bias.copy_(fpn.lateral_convs[i].bias)
            tv.layer_blocks[i][0].weight.copy_(fpn.output_convs[i].weight)
            tv.layer_blocks[i][0].bias.copy_(fpn.output_convs[i].bias)


def _randomise_biases(fpn):
    with torch.no_grad():
        for m in fpn.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.bias.normal_()


def test_equals_torchvision_maxpool():
    fpn = NECKS.build({"type": "FPN", "in_channels": IN_CH, "out_channels": 12})
    _randomise_biases(fpn)
    tv = FeaturePyramidNetwork(IN_CH, 12, extra_blocks=LastLevelMaxPool())
    _copy_to_torchvision(fpn, tv)
    xs = _inputs()
    with torch.no_grad():
        expected = list(tv(OrderedDict((str(i), x) for i, x in enumerate(xs))).values())
        got = fpn(xs)
    assert len(got) == 5
    for g, e in zip(got, expected):
        assert torch.equal(g, e)
    assert fpn.out_channels == 12 and fpn.strides == [4, 8, 16, 32, 64]


@pytest.mark.parametrize("extra_from", ["p5", "c5"])
def test_equals_torchvision_p6p7(extra_from):
    fpn = FPN(IN_CH, 12, extra="conv", num_extra=2, extra_from=extra_from)
    _randomise_biases(fpn)
    tv = FeaturePyramidNetwork(IN_CH, 12, extra_blocks=LastLevelP6P7(12 if extra_from == "p5" else 64, 12))
    _copy_to_torchvision(fpn, tv)
    with torch.no_grad():
        for j, name in enumerate(("p6", "p7")):
            getattr(tv.extra_blocks, name).weight.copy_(fpn.extra_convs[j].weight)
            getattr(tv.extra_blocks, name).bias.copy_(fpn.extra_convs[j].bias)
        xs = _inputs()
        expected = list(tv(OrderedDict((str(i), x) for i, x in enumerate(xs))).values())
        got = fpn(xs)
    assert len(got) == 6
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-6)


def test_init_strides_norm_and_no_extra():
    fpn = FPN([128, 256, 512], 16, extra=None)
    assert fpn.strides == [8, 16, 32]  # default: the last input has stride 32
    assert (fpn.lateral_convs[0].bias == 0).all()
    bound = (6 / ((1 + 1) * 128)) ** 0.5  # kaiming_uniform a=1, fan_in 128
    assert fpn.lateral_convs[0].weight.abs().max() <= bound
    gn = FPN(IN_CH, 32, norm="GN", in_strides=[4, 8, 16, 32])
    assert set(gn.state_dict()) >= {"lateral_convs.0.0.weight", "lateral_convs.0.1.weight", "output_convs.3.1.bias"}
    outs = gn(_inputs())
    assert [o.shape[1] for o in outs] == [32] * 5
    with pytest.raises(ValueError, match="built for 4 input maps"):
        gn(_inputs()[1:])
