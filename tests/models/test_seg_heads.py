"""Segmentation decoders: output shapes on odd sizes, loss keys, learning, ignore pixels, no train/eval branching."""

import pytest
import torch

import detkit.models  # noqa: F401  (registers the heads)
from detkit.registry import HEADS

CHANNELS = [8, 16, 24, 32]
STRIDES = [4, 8, 16, 32]
HEAD_SPECS = {
    "SemanticFPNHead": {"type": "SemanticFPNHead", "channels": 16},
    "DeepLabV3PlusHead": {"type": "DeepLabV3PlusHead", "channels": 16, "low_level_channels": 8, "dilations": [1, 2, 3]},
    "UPerHead": {"type": "UPerHead", "channels": 16, "pool_scales": [1, 2, 3]},
    "FCNHead": {"type": "FCNHead", "channels": 16, "num_convs": 2, "concat_input": True},
}


def _feats(b=2, h=67, w=93, seed=0):
    """Backbone-like maps for an h x w input: ceil division per stride (as strided convs give)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, c, -(-h // s), -(-w // s), generator=g) for c, s in zip(CHANNELS, STRIDES)]


def _head(name, **kw):
    torch.manual_seed(0)
    return HEADS.build({**HEAD_SPECS[name], **kw}, in_channels=CHANNELS, in_strides=STRIDES, num_classes=3)


@pytest.mark.parametrize("name", list(HEAD_SPECS))
def test_forward_and_predict_shapes_on_odd_sizes(name):
    head = _head(name).eval()
    feats = _feats()
    logits = head(feats)
    stride = {"FCNHead": 16}.get(name, 4)  # FCN runs on C4 (in_index -2)
    assert logits.shape == (2, 3, -(-67 // stride), -(-93 // stride))
    assert head.predict(logits, (67, 93)).shape == (2, 3, 67, 93)


@pytest.mark.parametrize("name", list(HEAD_SPECS))
def test_loss_decreases_on_a_tiny_batch(name):
    head = _head(name, dice_weight=0.5, **({"in_index": 0} if name == "FCNHead" else {})).train()
    feats = _feats(h=64, w=64)
    # labels that the features can explain: the sign of a channel of the finest map, upsampled
    target = (feats[0][:, 0] > 0).long() + (feats[0][:, 1] > 1).long()
    target = target.repeat_interleave(4, 1).repeat_interleave(4, 2)  # [B,64,64]
    target[:, :5] = 255
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    losses = []
    for _ in range(12):
        out = head.loss(head(feats), target)
        total = sum(out.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(total.item())
    prefix = "sem/aux_" if name == "FCNHead" else "sem/"
    assert set(out) == {prefix + "ce", prefix + "dice"}
    assert losses[-1] < 0.85 * losses[0], losses


@pytest.mark.parametrize("name", list(HEAD_SPECS))
def test_ignored_labels_do_not_change_the_loss(name):
    head = _head(name).eval()  # no dropout: the same logits twice
    feats = _feats(h=40, w=56)
    g = torch.Generator().manual_seed(1)
    target = torch.randint(0, 3, (2, 40, 56), generator=g)
    target[:, 10:25, 5:30] = 255
    a = head.loss(head(feats) * 100, target)
    logits = head(feats) * 100  # spread the near-zero initial logits so label changes show
    b = head.loss(logits, target)
    for k in a:
        assert torch.allclose(a[k], b[k])
    # labels changed only where ignored: unchanged; a valid label changed: changed
    t2 = target.clone()
    t2[:, 10:25, 5:30] = 255
    assert torch.allclose(head.loss(logits, t2)[list(a)[0]], a[list(a)[0]])
    t3 = target.clone()
    t3[:, 30:, :] = (t3[:, 30:, :] + 1) % 3
    assert not torch.allclose(head.loss(logits, t3)[list(a)[0]], a[list(a)[0]])


def test_heads_take_an_fpn_width_and_generic_strides():
    """An int width (FPN outputs) and non-standard strides (a dilated backbone: 4, 8, 8, 8) work."""
    strides = [4, 8, 8, 8]
    feats = [torch.randn(1, 16, 17, 24)] + [torch.randn(1, 16, 9, 12) for _ in range(3)]
    for name in ("SemanticFPNHead", "DeepLabV3PlusHead", "UPerHead"):
        head = HEADS.build(HEAD_SPECS[name], in_channels=16, in_strides=strides, num_classes=2).eval()
        assert head(feats).shape == (1, 2, 17, 24)


def test_deeplab_aspp_dilations_are_configurable():
    head = _head("DeepLabV3PlusHead", dilations=[12, 24, 36])
    rates = [b[0].dilation for b in head.aspp.branches[1:]]
    assert rates == [(12, 12), (24, 24), (36, 36)]


def test_heads_do_not_branch_on_training_mode():
    """The same inputs give the same losses in train and eval mode when nothing random is left (no dropout, GN)."""
    for name in ("SemanticFPNHead", "DeepLabV3PlusHead", "UPerHead"):
        head = _head(name, dropout=0.0, norm="GN")
        feats = _feats(h=32, w=32)
        target = torch.randint(0, 3, (2, 32, 32))
        a = head.train().loss(head(feats), target)
        b = head.eval().loss(head(feats), target)
        assert torch.allclose(a["sem/ce"], b["sem/ce"])
