"""Every detector builds its neck with the backbone's channels and strides (``parts.neck_defaults``): FPN's own
default assumes a last stride of 32, wrong under a ResNet that stops at layer3 or is dilated."""

import pytest
import torch

from detkit.config import load_config
from detkit.models import build_model
from detkit.models.fit_check import check_parts_fit


def _build(name, overrides):
    """A packaged config whose neck takes its in_channels (and strides) from the backbone, as a user's may."""
    cfg = load_config(name, overrides)
    del cfg["model"]["neck"]["in_channels"]
    torch.manual_seed(0)
    return build_model(cfg, class_names=["a", "b", "c"])


def _batch(h=64, w=96):
    images = torch.randint(0, 256, (1, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return {"images": images, "image_sizes": [(h, w)]}


@pytest.mark.parametrize("name", ["faster_rcnn_r18_fpn_shapes", "mask_rcnn_r18_fpn_shapes"])
def test_a_two_stage_neck_gets_the_backbone_strides(name):
    model = _build(
        name, ["model.backbone.out_indices=[0, 1, 2]", "model.rpn_head.anchor_sizes=[[16], [32], [64], [128]]"]
    )
    assert model.backbone.strides == [4, 8, 16]
    assert model.neck.strides == [4, 8, 16, 32]  # FPN's default in_strides made them [8, 16, 32, 64]
    assert list(model.box_head.featmap_strides) == model.neck.strides  # the config's RoI strides are the maps'
    check_parts_fit(model)
    (det,) = model.eval().predict(_batch(), score_thr=0.0)
    assert det["boxes"].shape[1] == 4 and det["boxes"].shape[0] == det["scores"].shape[0] > 0


@pytest.mark.parametrize(
    "override, strides, stages",
    [
        ("model.backbone.output_stride=16", [4, 8, 16, 16], [1, 1, 2, 2]),  # layer4 dilated: the last stride is 16
        ("model.backbone.out_indices=[0, 1, 2]", [4, 8, 16], [1, 1, 2]),
    ],
)
def test_a_segmentor_neck_gets_the_backbone_strides(override, strides, stages):
    model = _build("semfpn_r18_shapes", [override])
    assert model.backbone.strides == model.neck.strides == strides  # FPN's default: the last one 32
    # the decode head's conv + 2x upsampling stages per level follow the strides it is given (the neck's)
    assert [len(s) for s in model.decode_head.scale_heads] == stages
    check_parts_fit(model)
    (pred,) = model.eval().predict(_batch())
    assert pred["sem_seg"].shape == (64, 96)


def test_a_neck_of_ones_own_without_strides_still_builds():
    """docs/architecture.md asks a part for keyword arguments only: a neck that takes no strides gets none."""
    from torch import nn

    from detkit.registry import NECKS

    class ChannelNeck(nn.Module):  # the maps unchanged, one channel count out
        def __init__(self, in_channels, out_channels=64):
            super().__init__()
            self.convs = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
            self.out_channels, self.strides = out_channels, [4, 8, 16, 32]

        def forward(self, feats):
            return [conv(f) for conv, f in zip(self.convs, feats)]

    NECKS.register(ChannelNeck)
    try:
        cfg = load_config("faster_rcnn_r18_fpn_shapes", [])
        cfg["model"]["neck"] = {"type": "ChannelNeck", "out_channels": 64}
        torch.manual_seed(0)
        model = build_model(cfg, class_names=["a", "b", "c"])
        assert isinstance(model.neck, ChannelNeck) and len(model.neck.convs) == 4
    finally:
        NECKS._items.pop("ChannelNeck", None)


def test_a_neck_spec_with_other_levels_than_the_backbone_is_named_by_the_fit_check():
    """The packaged FPN keeps 4 in_channels; a backbone of 3 levels is a misfit that names the keys (strides for
    3 levels were not forced on a 4-level FPN: it said 'FPN: 3 in_strides for 4 in_channels')."""
    from detkit.models.fit_check import ModelFitError

    cfg = load_config("faster_rcnn_r18_fpn_shapes", ["model.backbone.out_indices=[1, 2, 3]"])
    torch.manual_seed(0)
    model = build_model(cfg, class_names=["a", "b", "c"])
    with pytest.raises(
        ModelFitError, match=r"model\.neck does not fit the part before it .* match what model\.backbone"
    ):
        check_parts_fit(model)
