import pytest
from torch import nn

from detkit.models.necks.fpn import FPN
from detkit.models.norms import build_norm


def test_build_norm_by_name():
    assert isinstance(build_norm(None, 8), nn.Identity) and isinstance(build_norm("", 8), nn.Identity)
    assert isinstance(build_norm("BN", 8), nn.BatchNorm2d)
    assert isinstance(build_norm("SyncBN", 8), nn.SyncBatchNorm)
    assert build_norm("GN", 256).num_groups == 32
    assert build_norm("GN", 48).num_groups == 24  # largest count <= 32 dividing 48
    assert build_norm("GN", 16).num_groups == 16 and build_norm("GN", 64, gn_groups=8).num_groups == 8
    with pytest.raises(ValueError, match="FPN norm must be"):
        build_norm("LN", 8, owner="FPN norm")


def test_fpn_gn_on_narrow_widths():
    fpn = FPN(in_channels=[8, 16], out_channels=16, norm="GN", extra=None)
    assert all(m.num_groups == 16 for m in fpn.modules() if isinstance(m, nn.GroupNorm))
