"""End to end: torchvision Faster/Mask R-CNN R50-FPN vs detkit built from the model base configs.

Random torchvision weights are converted with detkit's converter and both models run on the same image.
The torchvision backbone's BatchNorm2d layers are swapped for FrozenBatchNorm2d (what torchvision uses with
pretrained weights) so both sides do the same arithmetic; the box classifier is sharpened so that dozens of
detections pass the 0.05 score threshold, and the ten unused COCO ids get a -1e4 bias (as trained COCO
weights effectively have) so that dropping them does not change the softmax.
"""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torchvision.models.detection import fasterrcnn_resnet50_fpn, maskrcnn_resnet50_fpn

from detkit.benchmark.rcnn import random_frozen_bn
from detkit.config import load_config
from detkit.models import build_model
from detkit.weights.torchvision import COCO_CATEGORY_IDS, COCO_CLASSES, COCO_UNUSED_IDS, convert_checkpoint

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "_base_" / "models"


def _torchvision_model(kind: str, min_size: int, max_size: int) -> torch.nn.Module:
    torch.manual_seed(0)
    ctor = maskrcnn_resnet50_fpn if kind == "mask" else fasterrcnn_resnet50_fpn
    tv = ctor(weights=None, weights_backbone=None, num_classes=91, min_size=min_size, max_size=max_size).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        random_frozen_bn(tv.backbone.body, g)
        cls = tv.roi_heads.box_predictor.cls_score
        cls.weight.normal_(0, 0.01, generator=g)
        cls.bias.zero_()
        cls.weight[list(COCO_UNUSED_IDS)] = 0
        cls.bias[list(COCO_UNUSED_IDS)] = -1e4
    return tv


def _image(h: int, w: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    low = torch.rand(1, 3, h // 32, w // 32, generator=g)
    return (F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)[0] * 255).round().to(torch.uint8)


def _match(ref: dict, out: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """One-to-one matching (Hungarian on box distance, score and category) robust to tied scores."""
    ids = torch.tensor(COCO_CATEGORY_IDS)[out["labels"]]
    cost = (
        torch.cdist(ref["boxes"], out["boxes"], p=1)
        + 1e3 * (ref["scores"][:, None] - out["scores"][None]).abs()
        + 1e6 * (ref["labels"][:, None] != ids[None])
    )
    rows, cols = linear_sum_assignment(cost.numpy())
    return torch.as_tensor(rows), torch.as_tensor(cols)


@pytest.fixture(scope="module", params=["faster", "mask"])
def pair(request, tmp_path_factory):
    """(kind, torchvision model, detkit model converted from it through a checkpoint file)."""
    kind = request.param
    tmp = tmp_path_factory.mktemp(kind)
    tv = _torchvision_model(kind, min_size=800, max_size=1333)
    torch.save(tv.state_dict(), tmp / "tv.pth")
    cfg = load_config(CONFIGS / f"{kind}_rcnn_r50_fpn.yaml")
    meta = convert_checkpoint(tmp / "tv.pth", tmp / "detkit.pth", config=cfg, norm_eps=None)
    assert meta["converted_from"] == f"torchvision:{kind}rcnn_resnet50_fpn"
    assert meta["class_names"] == COCO_CLASSES
    ckpt = torch.load(tmp / "detkit.pth", map_location="cpu", weights_only=True)
    model = build_model(ckpt["meta"]["config"], class_names=ckpt["meta"]["class_names"]).eval()
    model.load_state_dict(ckpt["model"], strict=True)
    return kind, tv, model


def _compare(pair, h: int, w: int, min_dets: int, max_dets: int = 50) -> None:
    kind, tv, model = pair
    tv.transform.min_size, tv.transform.max_size = (min(h, w),), max(h, w)  # no resizing
    tv.roi_heads.detections_per_img = max_dets  # fewer than 100: the mask heads dominate the CPU time
    img = _image(h, w)
    with torch.no_grad():
        ref = tv([img.float() / 255])[0]
    out = model.predict({"images": img[None], "image_sizes": [(h, w)], "orig_sizes": [(h, w)]}, max_per_img=max_dets)[0]

    assert len(ref["boxes"]) >= min_dets  # a real comparison
    assert len(out["boxes"]) == len(ref["boxes"])
    o_ref, o_out = _match(ref, out)
    torch.testing.assert_close(out["scores"][o_out], ref["scores"][o_ref], atol=1e-3, rtol=0)
    torch.testing.assert_close(out["boxes"][o_out], ref["boxes"][o_ref], atol=1e-3, rtol=0)
    category_ids = torch.tensor(COCO_CATEGORY_IDS)[out["labels"][o_out]]
    assert torch.equal(category_ids, ref["labels"][o_ref])
    if kind == "mask":
        ref_m, out_m = ref["masks"][o_ref, 0] > 0.5, out["masks"][o_out]
        assert out_m.dtype == torch.bool and out_m.shape == ref_m.shape
        inter = (ref_m & out_m).flatten(1).sum(1).float()
        union = (ref_m | out_m).flatten(1).sum(1).float()
        iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
        assert (union > 0).sum() >= min_dets // 2
        assert iou.min() > 0.99, iou


def test_small_image_matches_torchvision(pair):
    """Fast path: a 256x384 image (torchvision told not to resize it)."""
    _compare(pair, 256, 384, min_dets=10)


def test_coco_size_image_matches_torchvision(pair):
    """The COCO test size: 800x1216 is not resized by torchvision's min_size=800, max_size=1333."""
    _compare(pair, 800, 1216, min_dets=20)
