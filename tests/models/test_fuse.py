"""detkit.models.fuse: folded norms and fused conv ops give the plain modules' outputs and gradients."""

import copy

import pytest
import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from detkit.models import fuse
from detkit.models.backbones.resnet import ResNet
from detkit.models.detectors.two_stage import TwoStageDetector
from detkit.models.fuse import conv_norm_act, conv_params, set_fused_inference
from detkit.models.heads.roi_box import RoIBoxHead
from detkit.models.heads.roi_mask import RoIMaskHead
from detkit.models.heads.rpn import RPNHead


def _randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    """Sane random norm statistics and variance-preserving conv weights (activations stay O(1))."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, (FrozenBatchNorm2d, nn.BatchNorm2d)):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) * 0.5 + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
        elif isinstance(m, nn.Conv2d):
            fan_in = m.weight[0].numel()
            m.weight.data.copy_(torch.randn(m.weight.shape, generator=g) * (1.0 / fan_in) ** 0.5)
    return module


def _detector(mask: bool = True) -> TwoStageDetector:
    torch.manual_seed(0)
    model = TwoStageDetector(
        backbone=ResNet(depth=18, norm="FrozenBN"),
        neck={"type": "FPN", "out_channels": 32},
        rpn_head=RPNHead(in_channels=32, pre_nms_top_n_test=200, post_nms_top_n_test=100),
        box_head=RoIBoxHead(num_classes=3, in_channels=32, representation_size=64),
        mask_head=RoIMaskHead(num_classes=3, in_channels=32, conv_channels=16) if mask else None,
        num_classes=3,
    )
    with torch.no_grad():
        _randomise(model)
        model.box_head.cls_score.weight.mul_(50)  # dozens of detections above the score threshold
    return model.eval()


def _batch(h: int = 96, w: int = 128) -> dict:
    g = torch.Generator().manual_seed(1)
    low = torch.rand(1, 3, h // 16, w // 16, generator=g)
    img = (torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear") * 255).to(torch.uint8)
    return {"images": img, "image_sizes": [(h, w)], "orig_sizes": [(h, w)]}


@pytest.mark.parametrize("norm", [FrozenBatchNorm2d(8), nn.BatchNorm2d(8).eval(), None])
@pytest.mark.parametrize("relu,add,channels_last", [(True, False, False), (True, True, True), (False, True, False)])
def test_conv_norm_act_equals_modules(norm, relu, add, channels_last):
    conv = nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=norm is None)
    _randomise(nn.Sequential(conv, norm) if norm is not None else conv)
    x = torch.randn(2, 4, 16, 20)
    other = torch.randn(2, 8, 8, 10)
    ref = conv(x) if norm is None else norm(conv(x))
    ref = torch.relu(ref + other) if relu and add else (ref + other if add else torch.relu(ref))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        out = conv_norm_act(x, conv, norm, relu=relu, add=other if add else None)
    torch.testing.assert_close(out, ref.detach(), atol=1e-5, rtol=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last) == channels_last
    # channels_last on the CPU: the weight prepacked once for this input shape (one entry per shape)
    packed = fuse._PACKED.get(conv, {})
    assert (tuple(x.shape) in packed) == (channels_last and fuse.PACKED_AVAILABLE) and len(packed) <= 1


def test_folded_gradients_match_unfolded():
    conv, norm = nn.Conv2d(3, 5, 3, padding=1, bias=False), FrozenBatchNorm2d(5)
    _randomise(nn.Sequential(conv, norm))
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    ref = torch.relu(norm(conv(x))).square().sum()
    gw, gx = torch.autograd.grad(ref, (conv.weight, x))
    out = conv_norm_act(x, conv, norm, relu=True).square().sum()
    fw, fx = torch.autograd.grad(out, (conv.weight, x))
    torch.testing.assert_close(fw, gw, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fx, gx, atol=1e-4, rtol=1e-4)


def test_folded_cache_follows_weight_changes():
    conv, norm = nn.Conv2d(3, 4, 1, bias=False), FrozenBatchNorm2d(4)
    _randomise(nn.Sequential(conv, norm))
    with torch.no_grad():
        w1, _ = conv_params(conv, norm)
        assert conv_params(conv, norm)[0] is w1  # cached
        conv.load_state_dict({"weight": conv.weight * 2})  # in-place copy_: a new version
        w2, _ = conv_params(conv, norm)
        norm.running_var.mul_(4)
        w3, _b3 = conv_params(conv, norm)
    torch.testing.assert_close(w2, 2 * w1)
    torch.testing.assert_close(w3, w2 / 2)
    x = torch.randn(1, 3, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(conv_norm_act(x, conv, norm), norm(conv(x)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mask", [False, True])
def test_fast_predict_matches_plain_and_keeps_state_dict(mask):
    model = _detector(mask)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    batch = _batch()
    plain = model.predict(batch)[0]
    fast = copy.deepcopy(model).optimize_for_inference().predict(batch)[0]
    assert len(plain["boxes"]) >= 5 and len(fast["boxes"]) == len(plain["boxes"])
    torch.testing.assert_close(fast["boxes"], plain["boxes"], atol=1e-3, rtol=0)
    torch.testing.assert_close(fast["scores"], plain["scores"], atol=1e-4, rtol=0)
    assert torch.equal(fast["labels"], plain["labels"])
    if mask:
        assert (fast["masks"] != plain["masks"]).float().mean() < 1e-3
    model.optimize_for_inference()
    model.predict(batch)
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    fresh = _detector(mask)
    fresh.load_state_dict(model.state_dict(), strict=True)  # loads into plain and fast models alike


def test_fast_path_is_inference_only_and_follows_new_weights():
    model = _detector(mask=False).optimize_for_inference()
    batch = _batch()
    x = model.preprocess(batch)
    with torch.no_grad():
        fast_feats = model.backbone(x)
    set_fused_inference(model, False)
    with torch.no_grad():
        plain_feats = model.backbone(x)
    set_fused_inference(model, True)
    grad_feats = model.backbone(x)  # autograd on: the plain modules, bit for bit
    assert all(torch.equal(a, b) for a, b in zip(grad_feats, plain_feats))
    for a, b in zip(fast_feats, plain_feats):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    # a weight update reaches the fast path (no stale folded weights)
    with torch.no_grad():
        model.backbone.layer4[0].conv1.weight.mul_(0.5)
        after = model.backbone(x)
        set_fused_inference(model, False)
        expect = model.backbone(x)
    torch.testing.assert_close(after[-1], expect[-1], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(after[-1], fast_feats[-1])


def test_training_after_optimize_for_inference():
    model = _detector(mask=True).optimize_for_inference().train()
    batch = _batch()
    batch["targets"] = [
        {
            "boxes": torch.tensor([[10.0, 12.0, 60.0, 70.0]]),
            "labels": torch.tensor([1]),
            "masks": torch.zeros(1, 96, 128, dtype=torch.uint8),
        }
    ]
    batch["targets"][0]["masks"][0, 12:70, 10:60] = 1
    losses = model.loss(batch)
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert model.backbone.layer4[0].conv1.weight.grad is not None


def test_mask_head_fast_path_runs_the_deconv_channels_last_and_keeps_the_logits():
    head = _randomise(RoIMaskHead(num_classes=3, in_channels=16, conv_channels=16)).eval()
    x = torch.randn(5, 16, 14, 14, generator=torch.Generator().manual_seed(2))
    seen = []
    head.deconv.register_forward_hook(
        lambda m, i, o: seen.append(i[0].is_contiguous(memory_format=torch.channels_last))
    )
    with torch.no_grad():
        plain = head.forward_pooled(x)
        set_fused_inference(head, True)
        fast = head.forward_pooled(x)
    assert seen == [False, True]  # NCHW on the plain path, channels_last on the fast one (CPU)
    torch.testing.assert_close(fast, plain, atol=1e-4, rtol=1e-4)
    # under autograd the plain modules run; the deconv's in-place ReLU gives the out-of-place gradients
    xg = x.clone().requires_grad_()
    head.forward_pooled(xg).sum().backward()
    ref_x = x.clone().requires_grad_()
    ref = head.logits(torch.relu(head.deconv(head.convs(ref_x))))
    ref.sum().backward()
    torch.testing.assert_close(xg.grad, ref_x.grad)
