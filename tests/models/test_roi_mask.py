"""RoIMaskHead against torchvision's Mask R-CNN RoIHeads; paste_masks against paste_masks_in_image."""

import torch
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import RoIHeads, paste_masks_in_image
from torchvision.ops import MultiScaleRoIAlign

from detkit.models.heads.roi_box import RoIBoxHead
from detkit.models.heads.roi_mask import RoIMaskHead
from detkit.ops.masks import paste_masks
from detkit.weights.torchvision import reorder_box_predictor

C, CH, REP = 3, 8, 32
H, W = 128, 96
SIZES = [(128, 96), (100, 80)]


def _feats(b=2):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(b, CH, H // s, W // s, generator=g) for s in (4, 8, 16, 32, 64)]


def _boxes(n, size, g):
    h, w = size
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.7, h * 0.7])
    wh = 4 + torch.rand(n, 2, generator=g) * torch.tensor([w * 0.5, h * 0.5])
    return torch.cat([xy, torch.minimum(xy + wh, torch.tensor([w, h]))], 1)


def _targets(g):
    out = []
    for n, size in zip((4, 2), SIZES):
        boxes = _boxes(n, size, g)
        masks = torch.zeros(n, *size, dtype=torch.uint8)
        for i, (x0, y0, x1, y1) in enumerate(boxes.round().int().tolist()):
            masks[i, y0:y1, x0 : (x0 + x1) // 2 + 1] = 1  # left half of the box
        out.append({"boxes": boxes, "labels": torch.randint(0, C, (n,), generator=g), "masks": masks})
    return out


def _pair(**kw):
    torch.manual_seed(0)
    box = RoIBoxHead(C, in_channels=CH, representation_size=REP, **kw)
    mask = RoIMaskHead(C, in_channels=CH, conv_channels=16)
    tv = RoIHeads(
        MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2),
        TwoMLPHead(CH * 49, REP),
        FastRCNNPredictor(REP, C + 1),
        0.5,
        0.5,
        kw.get("batch_size_per_image", 512),
        kw.get("positive_fraction", 0.25),
        None,
        0.05,
        0.5,
        100,
        mask_roi_pool=MultiScaleRoIAlign(["0", "1", "2", "3"], 14, 2),
        mask_head=MaskRCNNHeads(CH, [16] * 4, 1),
        mask_predictor=MaskRCNNPredictor(16, 16, C + 1),
    )
    with torch.no_grad():
        for p in tv.parameters():
            p.normal_(0, 0.2)
        box.fcs[0].load_state_dict(tv.box_head.fc6.state_dict())
        box.fcs[1].load_state_dict(tv.box_head.fc7.state_dict())
        pr = tv.box_predictor
        cw, cb, bw, bb = reorder_box_predictor(
            pr.cls_score.weight, pr.cls_score.bias, pr.bbox_pred.weight, pr.bbox_pred.bias, list(range(1, C + 1))
        )
        for t, v in (
            (box.cls_score.weight, cw),
            (box.cls_score.bias, cb),
            (box.bbox_pred.weight, bw),
            (box.bbox_pred.bias, bb),
        ):
            t.copy_(v)
        for i in range(4):
            mask.convs[i][0].load_state_dict(tv.mask_head[i][0].state_dict())
        mask.deconv.load_state_dict(tv.mask_predictor.conv5_mask.state_dict())
        mask.logits.weight.copy_(tv.mask_predictor.mask_fcn_logits.weight[1:])
        mask.logits.bias.copy_(tv.mask_predictor.mask_fcn_logits.bias[1:])
    return box, mask, tv


def test_mask_loss_matches_torchvision():
    box, mask, tv = _pair(batch_size_per_image=100000, positive_fraction=1.0)
    g = torch.Generator().manual_seed(1)
    feats, targets = _feats(), _targets(g)
    props = [
        torch.cat([t["boxes"].repeat(4, 1) + torch.randn(len(t["boxes"]) * 4, 4, generator=g) * 2, _boxes(40, s, g)])
        for t, s in zip(targets, SIZES)
    ]
    tv.train()
    tv_t = [{**t, "labels": t["labels"] + 1} for t in targets]
    _, ref = tv({str(i): f for i, f in enumerate(feats)}, [p.clone() for p in props], SIZES, tv_t)
    sp, labels, _, matched = box.sample(props, targets)
    pos = [lab < C for lab in labels]
    mp = [p[m] for p, m in zip(sp, pos)]
    assert sum(len(p) for p in mp) > 10
    logits = mask(feats, mp, SIZES)
    assert logits.shape[1:] == (C, 28, 28)
    loss = mask.loss(
        logits,
        mp,
        [t["masks"] for t in targets],
        [i[m] for i, m in zip(matched, pos)],
        [lab[m] for lab, m in zip(labels, pos)],
    )
    torch.testing.assert_close(loss["roi/mask"], ref["loss_mask"], atol=1e-5, rtol=1e-5)
    loss["roi/mask"].backward()
    assert mask.logits.weight.grad.abs().sum() > 0


def test_mask_loss_without_positives_is_zero():
    mask = RoIMaskHead(C, in_channels=CH, conv_channels=16)
    logits = mask(_feats(), [torch.zeros(0, 4), torch.zeros(0, 4)], SIZES)
    assert logits.shape == (0, C, 28, 28)
    loss = mask.loss(
        logits,
        [torch.zeros(0, 4)] * 2,
        [torch.zeros(0, *s, dtype=torch.uint8) for s in SIZES],
        [torch.zeros(0, dtype=torch.int64)] * 2,
        [torch.zeros(0, dtype=torch.int64)] * 2,
    )
    assert loss["roi/mask"].item() == 0.0 and loss["roi/mask"].requires_grad


def test_mask_predict_matches_torchvision():
    box, mask, tv = _pair()
    g = torch.Generator().manual_seed(2)
    feats = _feats()
    props = [_boxes(80, SIZES[0], g), _boxes(60, SIZES[1], g)]
    tv.eval()
    ref, _ = tv({str(i): f for i, f in enumerate(feats)}, props, SIZES)
    dets = box.predict(box(feats, props, SIZES), props, SIZES)
    probs = mask.predict(mask(feats, [d["boxes"] for d in dets], SIZES), dets)
    for p, r in zip(probs, ref):
        assert len(r["masks"]) > 10 and p.shape == r["masks"].shape
        torch.testing.assert_close(p, r["masks"], atol=1e-5, rtol=0)


def test_paste_masks_matches_torchvision():
    g = torch.Generator().manual_seed(3)
    for (h, w), n in (((50, 70), 40), ((97, 64), 25)):
        masks = torch.rand(n, 1, 28, 28, generator=g)
        xy = torch.rand(n, 2, generator=g) * torch.tensor([w, h])
        boxes = torch.cat([xy, xy + torch.rand(n, 2, generator=g) * torch.tensor([w, h]) * 0.8], 1)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        boxes[0] = torch.tensor([3.0, 4.0, 3.2, 4.1])  # degenerate box
        boxes[1] = torch.tensor([0.0, 0.0, w, h])  # whole image
        boxes[2] = torch.tensor([-9.0, -5.0, 12.0, 20.0])  # reaches past the top-left corner
        boxes[3] = torch.tensor([w - 6.0, h - 3.0, w + 15.0, h + 9.0])  # past the bottom-right corner
        ref = paste_masks_in_image(masks, boxes, (h, w))
        out = paste_masks(masks, boxes, (h, w))
        assert out.shape == (n, 1, h, w)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
        binary = paste_masks(masks, boxes, (h, w), threshold=0.5)
        assert binary.dtype == torch.bool
        assert (binary != (ref > 0.5)).float().mean() < 1e-4
        assert binary[2].any() and binary[3].any()
    assert paste_masks(torch.zeros(0, 1, 28, 28), torch.zeros(0, 4), (10, 12)).shape == (0, 1, 10, 12)
    outside = torch.tensor([[75.0, 2.0, 90.0, 9.0], [-30.0, -20.0, -2.0, -1.0]])  # torchvision's paste raises here
    assert not paste_masks(torch.ones(2, 1, 28, 28), outside, (50, 70), threshold=0.5).any()


def test_paste_masks_under_autocast_equals_float32():
    """Evaluation runs predict under train.amp's autocast: the pasting's products must stay float32."""
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(20, 1, 28, 28, generator=g)
    xy = torch.rand(20, 2, generator=g) * 150
    boxes = torch.cat([xy, xy + 20 + torch.rand(20, 2, generator=g) * 100], 1)
    ref = paste_masks(masks, boxes, (300, 300))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = paste_masks(masks, boxes, (300, 300))
        binary = paste_masks(masks, boxes, (300, 300), threshold=0.5)
    assert out.dtype == torch.float32 and torch.equal(out, ref)  # bf16 products: errors up to ~8e-3
    assert torch.equal(binary, ref > 0.5)
