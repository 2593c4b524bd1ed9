"""ResNet backbone: torchvision weights load by name and give torchvision's features."""

import logging

import pytest
import torch
from torch import nn
from torchvision.models import resnet18, resnet50
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops import FrozenBatchNorm2d

from detkit.models.backbones.resnet import ResNet
from detkit.registry import BACKBONES

LAYERS = {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}


def _randomise_norm_stats(model):
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d)):
            for t in (m.weight, m.bias, m.running_mean):
                t.data.copy_(torch.randn(t.shape, generator=gen) * 0.2 + (1.0 if t is m.weight else 0.0))
            m.running_var.data.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)


def _tv_model(depth, norm_layer=None):
    torch.manual_seed(0)
    model = (resnet18 if depth == 18 else resnet50)(weights=None, norm_layer=norm_layer)
    _randomise_norm_stats(model)
    return model.eval()


@pytest.mark.parametrize("depth,norm,tv_norm", [(18, "BN", None), (50, "FrozenBN", FrozenBatchNorm2d)])
def test_loads_torchvision_weights_and_matches_features(tmp_path, depth, norm, tv_norm):
    tv = _tv_model(depth, tv_norm)
    path = tmp_path / "imagenet.pth"
    torch.save(tv.state_dict(), path)
    ours = BACKBONES.build({"type": "ResNet", "depth": depth, "norm": norm, "init_checkpoint": str(path)}).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        expected = list(IntermediateLayerGetter(tv, LAYERS)(x).values())
        got = ours(x)
    assert len(got) == 4
    for g, e in zip(got, expected):
        assert torch.equal(g, e)
    width = 64 if depth == 18 else 256
    assert ours.out_channels == [width, width * 2, width * 4, width * 8]
    assert ours.strides == [4, 8, 16, 32]
    assert [g.shape[-1] for g in got] == [96 // s for s in ours.strides]
    assert set(ours.state_dict()) == {k for k in tv.state_dict() if not k.startswith("fc.")}


def test_frozen_stages_match_trainable_layers():
    model = ResNet(depth=18, norm="BN", frozen_stages=1)
    frozen = {n.split(".")[0] for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"conv1", "bn1", "layer1"}  # torchvision trainable_layers=3
    model.train()
    assert not model.layer1[0].bn1.training and model.layer2[0].bn1.training
    assert all(p.requires_grad for p in ResNet(depth=18, norm="BN", frozen_stages=0).parameters())
    assert all(p.requires_grad for p in ResNet(depth=18, norm="BN", frozen_stages=-1).parameters())
    assert not any(p.requires_grad for p in ResNet(depth=18, norm="BN", frozen_stages=4).parameters())
    # torchvision's COCO R-CNN v1 weights were trained with FrozenBN eps 0
    assert ResNet(depth=18, norm_eps=0.0).layer3[1].bn2.eps == 0.0


@pytest.mark.parametrize("norm", ["BN", "GN"])
def test_trainable_norm_variants_run_and_backprop(norm):
    model = ResNet(depth=18, norm=norm, frozen_stages=0, out_indices=(1, 2, 3)).train()
    outs = model(torch.randn(2, 3, 64, 64))
    assert [o.shape[1] for o in outs] == model.out_channels == [128, 256, 512]
    sum(o.mean() for o in outs).backward()
    assert model.conv1.weight.grad is not None


def test_out_indices_dilation_and_resnext():
    model = ResNet(depth=50, out_indices=(1, 2), replace_stride_with_dilation=(False, True, True))
    assert not hasattr(model, "layer4")  # stages after the last output are not built
    assert model.strides == [8, 8]
    outs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape[1:]) for o in outs] == [(512, 8, 8), (1024, 8, 8)]
    rx = ResNet(depth=50, groups=32, width_per_group=4, out_indices=(0,))
    assert rx.layer1[0].conv2.groups == 32 and rx.out_channels == [256]
    assert ResNet(depth=50, replace_stride_with_dilation=(False, False, True)).strides == [4, 8, 16, 16]


def test_wrong_architecture_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save({"model": _tv_model(18).state_dict()}, path)
    with pytest.raises(ValueError, match=r"r18\.pth.*does not fit ResNet-50"):
        ResNet(depth=50, init_checkpoint=str(path))
    other = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, other)
    with pytest.raises(ValueError, match=r"other\.pth.*no key matches"):
        ResNet(depth=18, init_checkpoint=str(other))
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        ResNet(depth=18, init_checkpoint=str(tmp_path / "missing.pth"))


def test_unreadable_init_checkpoint_names_the_key(tmp_path):
    from detkit.utils.checkpoint import CheckpointError

    noise = tmp_path / "noise.pth"
    noise.write_bytes(bytes(range(7, 256)) * 8)
    with pytest.raises(CheckpointError, match=r"model\.backbone\.init_checkpoint .*noise\.pth .*not a PyTorch"):
        ResNet(depth=18, init_checkpoint=str(noise))
    config = tmp_path / "r18.yaml"
    config.write_text("model:\n  backbone:\n    type: ResNet\n")
    with pytest.raises(CheckpointError, match=r"r18\.yaml is a YAML file"):
        ResNet(depth=18, init_checkpoint=str(config))


def test_wrapped_checkpoint_and_missing_keys_are_reported(tmp_path, caplog):
    state = _tv_model(18).state_dict()
    del state["layer4.1.conv2.weight"]
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    with caplog.at_level(logging.WARNING):
        model = ResNet(depth=18, norm="BN", init_checkpoint=str(path))
    assert "layer4.1.conv2.weight" in caplog.text
    assert torch.equal(model.conv1.weight, state["conv1.weight"])


def test_fuse_frozen_bn_keeps_outputs():
    model = ResNet(depth=18).eval()
    _randomise_norm_stats(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        after = model.fuse_frozen_bn()(x)
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
