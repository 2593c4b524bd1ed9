"""RoIBoxHead against torchvision's RoIHeads (TwoMLPHead + FastRCNNPredictor) with the same weights."""

import pytest
import torch
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import MultiScaleRoIAlign

from detkit.models.heads.roi_box import RoIBoxHead
from detkit.registry import HEADS
from detkit.weights.torchvision import reorder_box_predictor

C, CH, REP = 3, 8, 32  # classes, feature channels, fc width (tiny)
H, W = 128, 96  # padded input size
SIZES = [(128, 96), (100, 80)]  # the first image fills the batch (torchvision infers scales from the max size)


def _feats(b=2):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(b, CH, H // s, W // s, generator=g) for s in (4, 8, 16, 32, 64)]


def _boxes(n, size, g):
    h, w = size
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.7, h * 0.7])
    wh = 4 + torch.rand(n, 2, generator=g) * torch.tensor([w * 0.5, h * 0.5])
    return torch.cat([xy, torch.minimum(xy + wh, torch.tensor([w, h]))], 1)


def _pair(**kw):
    """A detkit head and a torchvision RoIHeads with copied weights."""
    torch.manual_seed(0)
    head = RoIBoxHead(C, in_channels=CH, representation_size=REP, **kw)
    tv = RoIHeads(
        MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2),
        TwoMLPHead(CH * 49, REP),
        FastRCNNPredictor(REP, C + 1),
        kw.get("fg_iou_thresh", 0.5),
        kw.get("bg_iou_thresh", 0.5),
        kw.get("batch_size_per_image", 512),
        kw.get("positive_fraction", 0.25),
        None,
        kw.get("score_thr", 0.05),
        kw.get("nms_thr", 0.5),
        kw.get("max_per_img", 100),
    )
    with torch.no_grad():
        for p in tv.parameters():
            p.normal_(0, 0.2)
        head.fcs[0].load_state_dict(tv.box_head.fc6.state_dict())
        head.fcs[1].load_state_dict(tv.box_head.fc7.state_dict())
        pr = tv.box_predictor
        cw, cb, bw, bb = reorder_box_predictor(
            pr.cls_score.weight, pr.cls_score.bias, pr.bbox_pred.weight, pr.bbox_pred.bias, list(range(1, C + 1))
        )
        head.cls_score.weight.copy_(cw)
        head.cls_score.bias.copy_(cb)
        head.bbox_pred.weight.copy_(bw)
        head.bbox_pred.bias.copy_(bb)
    return head, tv


def _targets(g):
    t0 = {"boxes": _boxes(4, SIZES[0], g), "labels": torch.tensor([0, 1, 2, 1])}
    t1 = {"boxes": _boxes(2, SIZES[1], g), "labels": torch.tensor([2, 0])}
    return [t0, t1]


def _proposals(targets, g, n=60):
    out = []
    for t, size in zip(targets, SIZES):
        jitter = t["boxes"].repeat(5, 1) + torch.randn(len(t["boxes"]) * 5, 4, generator=g) * 3
        out.append(torch.cat([jitter, _boxes(n, size, g)]))
    return out


def test_predict_matches_torchvision():
    head, tv = _pair()
    g = torch.Generator().manual_seed(1)
    feats = _feats()
    props = [_boxes(150, SIZES[0], g), _boxes(90, SIZES[1], g)]
    head.eval()
    tv.eval()
    dets = head.predict(head(feats, props, SIZES), props, SIZES)
    ref, _ = tv({str(i): f for i, f in enumerate(feats)}, props, SIZES)
    for d, r in zip(dets, ref):
        assert len(r["boxes"]) > 20  # a real comparison, not two empty lists
        assert torch.equal(d["labels"], r["labels"] - 1)
        torch.testing.assert_close(d["boxes"], r["boxes"], atol=1e-4, rtol=0)
        torch.testing.assert_close(d["scores"], r["scores"], atol=1e-6, rtol=0)


def test_predict_settings_override_and_topk():
    head, _ = _pair()
    g = torch.Generator().manual_seed(2)
    props = [_boxes(150, SIZES[0], g), _boxes(90, SIZES[1], g)]
    raw = head(_feats(), props, SIZES)
    loose = head.predict(raw, props, SIZES)
    strict = head.predict(raw, props, SIZES, score_thr=0.3, max_per_img=5)
    for lo, st in zip(loose, strict):
        assert len(st["scores"]) <= 5 and (st["scores"] > 0.3).all()
        assert len(lo["scores"]) > len(st["scores"])
        assert (lo["scores"][:-1] >= lo["scores"][1:]).all()
        assert (lo["labels"] >= 0).all() and (lo["labels"] < C).all()
    assert head.predict(raw, props, SIZES, score_thr=1.0)[0]["boxes"].shape == (0, 4)


def test_loss_matches_torchvision():
    # sample everything (large batch, all positives allowed) so the random draws cannot differ
    head, tv = _pair(batch_size_per_image=100000, positive_fraction=1.0)
    g = torch.Generator().manual_seed(3)
    feats, targets = _feats(), _targets(g)
    props = _proposals(targets, g)
    tv.train()
    tv_targets = [{"boxes": t["boxes"], "labels": t["labels"] + 1} for t in targets]
    _, ref = tv({str(i): f for i, f in enumerate(feats)}, [p.clone() for p in props], SIZES, tv_targets)
    sp, labels, reg, _matched = head.sample(props, targets)
    assert [len(p) for p in sp] == [len(p) + len(t["boxes"]) for p, t in zip(props, targets)]
    assert any((lab < C).sum() > 5 for lab in labels)
    losses = head.loss(head(feats, sp, SIZES), labels, reg)
    assert set(losses) == {"roi/cls", "roi/box"}
    torch.testing.assert_close(losses["roi/cls"], ref["loss_classifier"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(losses["roi/box"], ref["loss_box_reg"], atol=1e-5, rtol=1e-5)
    losses["roi/cls"].backward()
    assert head.cls_score.weight.grad is not None


def test_sample_adds_gt_and_balances():
    head = RoIBoxHead(C, in_channels=CH, representation_size=REP, batch_size_per_image=16, positive_fraction=0.25)
    g = torch.Generator().manual_seed(4)
    targets = _targets(g)
    props, labels, reg, matched = head.sample(_proposals(targets, g), targets)
    for p, lab, r, m, t in zip(props, labels, reg, matched, targets):
        assert len(p) == len(lab) == len(r) == len(m) <= 16
        assert (lab < C).sum() <= 4 and ((lab >= 0) & (lab <= C)).all()
        pos = lab < C
        assert torch.equal(lab[pos], t["labels"][m[pos]])
    # a gt box proposed exactly has zero regression target
    t = {"boxes": torch.tensor([[10.0, 10.0, 50.0, 60.0]]), "labels": torch.tensor([1])}
    p, lab, r, m = head.sample([torch.zeros(0, 4)], [t])
    assert [x.tolist() for x in lab] == [[1]] and torch.allclose(r[0], torch.zeros(1, 4), atol=1e-6)


def test_empty_targets_and_empty_proposals():
    head = RoIBoxHead(C, in_channels=CH, representation_size=REP)
    g = torch.Generator().manual_seed(5)
    feats = _feats()
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}] * 2
    props, labels, reg, _ = head.sample([_boxes(30, SIZES[0], g), _boxes(20, SIZES[1], g)], empty)
    assert all((lab == C).all() for lab in labels)
    losses = head.loss(head(feats, props, SIZES), labels, reg)
    assert torch.isfinite(losses["roi/cls"]) and losses["roi/box"].item() == 0.0
    props, labels, reg, _ = head.sample([torch.zeros(0, 4)] * 2, empty)
    losses = head.loss(head(feats, props, SIZES), labels, reg)
    assert all(torch.isfinite(v) and v.item() == 0 for v in losses.values())
    dets = head.predict(head(feats, [torch.zeros(0, 4)] * 2, SIZES), [torch.zeros(0, 4)] * 2, SIZES)
    assert [d["boxes"].shape for d in dets] == [(0, 4), (0, 4)]


def test_4conv1fc_builds_from_registry():
    head = HEADS.build(
        {
            "type": "RoIBoxHead",
            "head": "4conv1fc",
            "norm": "GN",
            "conv_channels": 16,
            "in_channels": CH,
            "representation_size": REP,
        },
        num_classes=C,
    )
    g = torch.Generator().manual_seed(6)
    props = [_boxes(7, SIZES[0], g), _boxes(5, SIZES[1], g)]
    logits, deltas = head(_feats(), props, SIZES)
    assert logits.shape == (12, C + 1) and deltas.shape == (12, 4 * C)
    assert "convs.0.0.weight" in head.state_dict() and "convs.0.1.weight" in head.state_dict()
    with pytest.raises(ValueError, match="2fc"):
        RoIBoxHead(C, head="3fc")
