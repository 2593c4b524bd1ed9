"""RPNHead gives torchvision's RegionProposalNetwork proposals and losses with the same weights."""

import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.models.detection.rpn import RPNHead as TVRPNHead

from detkit.models.heads.rpn import RPNHead
from detkit.registry import HEADS

SIZES = ((32,), (64,), (128,), (256,), (512,))
BATCH_SHAPE = (96, 128)
IMAGE_SIZES = [(96, 120), (70, 128)]


def _feats(channels=8):
    torch.manual_seed(0)
    h, w = BATCH_SHAPE
    return [torch.randn(2, channels, -(-h // s), -(-w // s)) for s in (4, 8, 16, 32, 64)]


def _pair(batch_size_per_image=256, **kw):
    """Our head with large random weights (varied proposals) and torchvision's RPN with the same weights."""
    head = HEADS.build(
        {
            "type": "RPNHead",
            "in_channels": 8,
            "batch_size_per_image": batch_size_per_image,
            "pre_nms_top_n_test": 150,
            "post_nms_top_n_test": 60,
            "pre_nms_top_n_train": 300,
            "post_nms_top_n_train": 120,
            **kw,
        }
    )
    torch.manual_seed(1)
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(0, 0.3)
    tv_head = TVRPNHead(8, 3)
    tv_head.load_state_dict(head.state_dict())  # same state-dict names as torchvision
    rpn = RegionProposalNetwork(
        AnchorGenerator(SIZES, ((0.5, 1.0, 2.0),) * 5),
        tv_head,
        0.7,
        0.3,
        batch_size_per_image,
        0.5,
        dict(training=300, testing=150),
        dict(training=120, testing=60),
        0.7,
        score_thresh=kw.get("score_thr", 0.0),
    )
    return head, rpn


def _run_tv(rpn, feats, targets=None):
    images = ImageList(torch.zeros(2, 3, *BATCH_SHAPE), IMAGE_SIZES)
    return rpn(images, {str(i): f for i, f in enumerate(feats)}, targets)


def _targets():
    return [
        {"boxes": torch.tensor([[10.0, 12.0, 50.0, 60.0], [60.0, 5.0, 118.0, 90.0], [30.0, 30.0, 34.0, 33.0]])},
        {"boxes": torch.tensor([[0.0, 0.0, 127.0, 69.0]])},
    ]


@pytest.mark.parametrize("score_thr", [0.0, 0.4])
def test_proposals_equal_torchvision_eval(score_thr):
    head, rpn = _pair(score_thr=score_thr)
    feats = _feats()
    expected, _ = _run_tv(rpn.eval(), feats)
    raw = head(feats)
    boxes, scores = head.predict(raw, feats, BATCH_SHAPE, IMAGE_SIZES, with_scores=True)
    assert [len(b) for b in boxes] == [len(e) for e in expected]
    assert len(boxes[0]) > 10
    for b, e, s, size in zip(boxes, expected, scores, IMAGE_SIZES):
        torch.testing.assert_close(b, e, rtol=0, atol=1e-4)
        assert not b.requires_grad and (s >= score_thr).all()
        assert (b[:, 2] <= size[1]).all() and (b[:, 3] <= size[0]).all()


def _same_count_targets():  # no padding in the batched assignment
    return [{"boxes": t["boxes"][:1].repeat(2, 1) + torch.tensor([[0.0], [5.0]])} for t in _targets()]


@pytest.mark.parametrize("make_targets", [_targets, _same_count_targets])
def test_train_proposals_and_loss_equal_torchvision(make_targets):
    # a sample size above the anchor count samples every anchor: both samplers agree
    head, rpn = _pair(batch_size_per_image=100000)
    feats = _feats()
    expected_boxes, expected_losses = _run_tv(rpn.train(), feats, make_targets())
    raw = head(feats)
    boxes = head.predict(raw, feats, BATCH_SHAPE, IMAGE_SIZES, train=True)
    assert len(boxes[0]) == 120  # the train post-NMS top-n, although the head is in eval mode
    for b, e in zip(boxes, expected_boxes):
        torch.testing.assert_close(b, e, rtol=0, atol=1e-4)
    losses = head.loss(raw, feats, BATCH_SHAPE, make_targets(), IMAGE_SIZES)
    assert set(losses) == {"rpn/cls", "rpn/box"}
    torch.testing.assert_close(losses["rpn/cls"], expected_losses["loss_objectness"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(losses["rpn/box"], expected_losses["loss_rpn_box_reg"], rtol=1e-5, atol=1e-6)
    (losses["rpn/cls"] + losses["rpn/box"]).backward()
    assert head.bbox_pred.weight.grad.abs().sum() > 0 and head.conv[0][0].weight.grad is not None


def test_empty_targets():
    head, rpn = _pair(batch_size_per_image=100000)
    feats = _feats()
    targets = [_targets()[0], {"boxes": torch.zeros(0, 4)}]
    _, expected = _run_tv(rpn.train(), feats, targets)
    got = head.loss(head(feats), feats, BATCH_SHAPE, targets)
    torch.testing.assert_close(got["rpn/cls"], expected["loss_objectness"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got["rpn/box"], expected["loss_rpn_box_reg"], rtol=1e-5, atol=1e-6)
    none = [{"boxes": torch.zeros(0, 4)}, {"boxes": torch.zeros((0, 4))}]
    losses = head.loss(head(feats), feats, BATCH_SHAPE, none)
    assert losses["rpn/box"].item() == 0.0 and torch.isfinite(losses["rpn/cls"])
    losses["rpn/cls"].backward()


def test_sampling_assignment_and_api():
    head = RPNHead(in_channels=8, batch_size_per_image=64, positive_fraction=0.25)
    feats = _feats()
    anchors = head.anchors(feats, BATCH_SHAPE)
    assert [len(a) for a in anchors] == [f.shape[-2] * f.shape[-1] * 3 for f in feats]
    labels, matches, gt = head.assign(torch.cat(anchors), [t["boxes"] for t in _targets()])
    assert labels.shape == matches.shape == (2, sum(len(a) for a in anchors)) and gt.shape == (2, 3, 4)
    assert set(labels.unique().tolist()) == {-1, 0, 1}
    assert ((labels == 1) == (matches >= 0)).all() and (matches[1] <= 0).all()  # image 1 has one gt
    raw = head(feats)
    assert raw[0][0].shape == (2, 3, 24, 32) and raw[1][0].shape == (2, 12, 24, 32)
    losses = head.loss(raw, feats, BATCH_SHAPE, _targets())
    assert all(torch.isfinite(v) for v in losses.values())
    assert set(head.state_dict()) == {
        "conv.0.0.weight",
        "conv.0.0.bias",
        "cls_logits.weight",
        "cls_logits.bias",
        "bbox_pred.weight",
        "bbox_pred.bias",
    }
    assert (head.cls_logits.bias == 0).all() and head.cls_logits.weight.std() < 0.02
    with pytest.raises(ValueError, match="anchor sizes for 5 levels"):
        head(feats[:4])
