"""Segmentation losses: Dice values, ignore pixels never count, class weights, empty targets."""

import pytest
import torch
import torch.nn.functional as F

from detkit.models.heads.seg_common import SegCriterion
from detkit.models.losses.dice import dice_loss


def _case(seed=0, b=2, c=4, h=12, w=10):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, c, h, w, generator=g)
    target = torch.randint(0, c, (b, h, w), generator=g)
    target[:, :3, :] = 255
    target[0, 5, 5] = 255
    return logits, target


def test_dice_perfect_and_wrong_predictions():
    _, target = _case()
    valid = target.clamp(max=3)
    perfect = F.one_hot(valid, 4).permute(0, 3, 1, 2).float() * 100.0
    assert float(dice_loss(perfect, target)) < 1e-3
    wrong = F.one_hot((valid + 1) % 4, 4).permute(0, 3, 1, 2).float() * 100.0
    assert float(dice_loss(wrong, target)) > 0.95


def test_dice_matches_hand_computation():
    logits, target = _case(seed=3)
    probs = logits.softmax(1)
    valid = target != 255
    terms = []
    for k in range(4):
        p = probs[:, k][valid]
        t = (target[valid] == k).float()
        terms.append(1 - (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1))
    assert torch.allclose(dice_loss(logits, target), torch.stack(terms).mean(), atol=1e-6)
    w = torch.tensor([1.0, 2.0, 0.0, 1.0])
    assert torch.allclose(
        dice_loss(logits, target, class_weight=w), (torch.stack(terms) * w).sum() / w.sum(), atol=1e-6
    )


@pytest.mark.parametrize("dice_weight", [0.0, 0.5])
@pytest.mark.parametrize("class_weight", [None, [1.0, 2.0, 0.5, 1.0]])
def test_ignored_pixels_never_count(dice_weight, class_weight):
    logits, target = _case(seed=1)
    crit = SegCriterion(4, class_weight=class_weight, dice_weight=dice_weight)
    base = crit(logits, target)
    ignored = target == 255
    logits2 = logits.clone()
    logits2.permute(0, 2, 3, 1)[ignored] = torch.randn(int(ignored.sum()), 4) * 50  # new logits where ignored
    changed = crit(logits2, target)
    assert set(base) == {"sem/ce"} | ({"sem/dice"} if dice_weight else set())
    for k in base:
        assert torch.allclose(base[k], changed[k], atol=1e-6), k
    # and the ignored pixels get no gradient
    x = logits.clone().requires_grad_(True)
    sum(crit(x, target).values()).backward()
    assert float(x.grad.permute(0, 2, 3, 1)[ignored].abs().max()) == 0.0


def test_cross_entropy_equals_torch_with_class_weights_and_upsampling():
    logits, target = _case(seed=2, h=12, w=10)
    small = logits[:, :, ::2, ::2]  # [B,C,6,5] -> upsampled to 12x10
    w = [1.0, 3.0, 0.5, 1.0]
    crit = SegCriterion(4, class_weight=w, ce_weight=2.0, prefix="sem/aux_")
    up = F.interpolate(small, size=(12, 10), mode="bilinear", align_corners=False)
    ref = 2.0 * F.cross_entropy(up, target, weight=torch.tensor(w), ignore_index=255)
    out = crit(small, target)
    assert list(out) == ["sem/aux_ce"] and torch.allclose(out["sem/aux_ce"], ref)


def test_all_ignored_batch_gives_zero_with_gradient():
    logits = torch.randn(1, 3, 8, 8, requires_grad=True)
    out = SegCriterion(3, dice_weight=1.0)(logits, torch.full((1, 8, 8), 255))
    assert out["sem/ce"].item() == 0.0 and torch.isfinite(out["sem/dice"])
    sum(out.values()).backward()
    assert logits.grad is not None


def test_bad_class_weight_length():
    with pytest.raises(ValueError, match="3 values for 4 classes"):
        SegCriterion(4, class_weight=[1, 2, 3])
