"""TwoStageDetector on tiny CPU batches: contract, empty images, mixed sizes, training, original coordinates."""

from pathlib import Path

import pytest
import torch
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from detkit.config import load_config
from detkit.models import build_model
from detkit.models.backbones.resnet import ResNet
from detkit.models.detectors.two_stage import TwoStageDetector
from detkit.models.heads.roi_box import RoIBoxHead
from detkit.models.heads.rpn import RPNHead
from detkit.models.necks.fpn import FPN
from detkit.models.preprocess import Preprocessor

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "_base_" / "models"
C = 3


def _tiny_cfg(mask: bool) -> dict:
    """The r18 base config, slimmed for CPU tests."""
    cfg = load_config(CONFIGS / ("mask_rcnn_r18_fpn.yaml" if mask else "faster_rcnn_r18_fpn.yaml"))
    m = cfg["model"]
    m["num_classes"] = C
    m["neck"]["out_channels"] = 32
    m["rpn_head"].update(
        in_channels=32,
        pre_nms_top_n_train=200,
        post_nms_top_n_train=100,
        pre_nms_top_n_test=100,
        post_nms_top_n_test=50,
    )
    m["box_head"].update(in_channels=32, representation_size=64, batch_size_per_image=64)
    if mask:
        m["mask_head"].update(in_channels=32, conv_channels=16)
    return cfg


def _batch(sizes=((64, 96), (80, 64)), with_masks=True, empty=(), seed=0):
    g = torch.Generator().manual_seed(seed)
    ph = -(-max(h for h, _ in sizes) // 32) * 32
    pw = -(-max(w for _, w in sizes) // 32) * 32
    images = torch.zeros(len(sizes), 3, ph, pw, dtype=torch.uint8)
    targets = []
    for i, (h, w) in enumerate(sizes):
        images[i, :, :h, :w] = 40
        boxes, masks = [], []
        if i not in empty:
            for j, (x0, y0, s) in enumerate(((4, 6, 24), (w // 2, h // 2, 20))):
                x1, y1 = min(x0 + s, w), min(y0 + s, h)
                images[i, j % 3, y0:y1, x0:x1] = 220
                boxes.append([x0, y0, x1, y1])
                m = torch.zeros(h, w, dtype=torch.uint8)
                m[y0:y1, x0:x1] = 1
                masks.append(m)
        t = {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor([j % C for j in range(len(boxes))], dtype=torch.int64),
        }
        if with_masks:
            t["masks"] = torch.stack(masks) if masks else torch.zeros(0, h, w, dtype=torch.uint8)
        targets.append(t)
    images[:, :, :, :] = (images.int() + torch.randint(0, 20, images.shape, generator=g)).clamp(max=255).to(torch.uint8)
    return {
        "images": images,
        "image_sizes": list(sizes),
        "orig_sizes": list(sizes),
        "targets": targets,
        "image_ids": list(range(len(sizes))),
    }


@pytest.fixture(scope="module")
def mask_model():
    torch.manual_seed(0)
    return build_model(_tiny_cfg(mask=True))


def test_loss_and_predict_contract(mask_model):
    batch = _batch()
    mask_model.train()
    losses = mask_model(batch)
    assert set(losses) == {"rpn/cls", "rpn/box", "roi/cls", "roi/box", "roi/mask"}
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    mask_model.eval()
    preds = mask_model(batch)
    assert len(preds) == 2
    for p, (h, w) in zip(preds, batch["orig_sizes"]):
        n = len(p["boxes"])
        assert p["boxes"].dtype == torch.float32 and p["boxes"].shape == (n, 4)
        assert p["scores"].shape == (n,) and p["labels"].dtype == torch.int64
        assert p["masks"].dtype == torch.bool and p["masks"].shape == (n, h, w)
        assert ((p["labels"] >= 0) & (p["labels"] < C)).all()
        assert (p["boxes"][:, 2] <= w).all() and (p["boxes"][:, 3] <= h).all()
    assert mask_model.class_names == [f"class_{i}" for i in range(C)]
    assert mask_model.mask_head.num_classes == C and mask_model.box_head.num_classes == C


def test_empty_images_in_training(mask_model):
    mask_model.train()
    losses = mask_model(_batch(empty=(0, 1)))
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["roi/box"].item() == 0 and losses["roi/mask"].item() == 0 and losses["rpn/box"].item() == 0
    sum(losses.values()).backward()
    losses = mask_model(_batch(empty=(1,)))
    assert all(torch.isfinite(v) for v in losses.values()) and losses["roi/mask"] > 0


def test_mixed_sizes_in_one_batch(mask_model):
    """Images of different sizes in one batch give what each gives alone (on the same padded canvas)."""
    mask_model.eval()
    batch = _batch(sizes=((64, 96), (128, 160)))
    both = mask_model(batch)
    for i, size in enumerate(batch["image_sizes"]):
        alone = mask_model({"images": batch["images"][i : i + 1], "image_sizes": [size], "orig_sizes": [size]})[0]
        assert len(both[i]["boxes"]) == len(alone["boxes"]) > 0
        torch.testing.assert_close(both[i]["boxes"], alone["boxes"], atol=1e-3, rtol=0)
        torch.testing.assert_close(both[i]["scores"], alone["scores"], atol=1e-4, rtol=0)
        assert torch.equal(both[i]["labels"], alone["labels"])
        assert both[i]["masks"].shape[1:] == size
        assert (both[i]["boxes"][:, 2] <= size[1]).all() and (both[i]["boxes"][:, 3] <= size[0]).all()
    mask_model.train()
    losses = mask_model(batch)
    assert all(torch.isfinite(v) for v in losses.values())


def test_predictions_in_original_coordinates(mask_model):
    mask_model.eval()
    batch = _batch(with_masks=False)
    base = mask_model.predict(batch, score_thr=0.0)
    resized = dict(
        batch,
        scale_factors=[(2.0, 2.0), (0.5, 0.25)],
        pad_offsets=[(4.0, 2.0), (0.0, 0.0)],
        orig_sizes=[(31, 46), (320, 256)],
    )
    mapped = mask_model.predict(resized, score_thr=0.0)
    for b, m, (sx, sy), (left, top), (h, w) in zip(
        base, mapped, resized["scale_factors"], resized["pad_offsets"], resized["orig_sizes"]
    ):
        assert len(b["boxes"]) == len(m["boxes"]) > 0
        expect = (b["boxes"] - torch.tensor([left, top, left, top])) / torch.tensor([sx, sy, sx, sy])
        expect[:, 0::2] = expect[:, 0::2].clamp(0, w)
        expect[:, 1::2] = expect[:, 1::2].clamp(0, h)
        torch.testing.assert_close(m["boxes"], expect)
        assert m["masks"].shape == (len(m["boxes"]), h, w)
        torch.testing.assert_close(m["scores"], b["scores"])


def test_predict_score_override(mask_model):
    mask_model.eval()
    batch = _batch()
    loose = mask_model.predict(batch, score_thr=0.0, max_per_img=7)
    assert all(len(p["boxes"]) == 7 for p in loose)
    strict = mask_model.predict(batch, score_thr=0.999)
    assert all((p["scores"] > 0.999).all() for p in strict)
    assert mask_model.box_head.score_thr == 0.05  # the override does not stick


def test_training_step_lowers_loss():
    torch.manual_seed(0)
    model = build_model(_tiny_cfg(mask=False)).train()
    batch = _batch(with_masks=False)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.02, momentum=0.9)

    def total(seed=0):
        torch.manual_seed(seed)  # same anchor/RoI samples for the comparison
        return sum(model(batch).values())

    first = total().item()
    for step in range(12):
        opt.zero_grad()
        total(step).backward()
        opt.step()
    last = total().item()
    assert last < 0.8 * first, (first, last)


def test_parts_as_modules_and_errors():
    backbone = ResNet(18, norm="BN", frozen_stages=0)
    model = TwoStageDetector(
        backbone,
        FPN(backbone.out_channels, 32),
        RPNHead(32),
        RoIBoxHead(2, in_channels=32, representation_size=32),
        num_classes=2,
        class_names=["cat", "dog"],
        preprocess={"size_divisor": 64},
    )
    assert model.mask_head is None and model.class_names == ["cat", "dog"]
    assert model.preprocess.size_divisor == 64
    model.train()
    losses = model(_batch(sizes=((64, 64), (64, 64)), with_masks=False))
    assert set(losses) == {"rpn/cls", "rpn/box", "roi/cls", "roi/box"}
    model.eval()
    assert "masks" not in model(_batch(sizes=((64, 64),), with_masks=False))[0]
    with pytest.raises(ValueError, match="num_classes"):
        TwoStageDetector(backbone, None, RPNHead(32), RoIBoxHead(5, in_channels=32), num_classes=2)
    with pytest.raises(ValueError, match="class_names"):
        TwoStageDetector(backbone, None, RPNHead(32), RoIBoxHead(2, in_channels=32), num_classes=2, class_names=["a"])


def test_mask_model_needs_masks(mask_model):
    mask_model.train()
    with pytest.raises(ValueError, match="with_masks=True"):
        mask_model(_batch(with_masks=False))


def test_base_configs_build():
    for name in ("faster_rcnn_r50_fpn", "mask_rcnn_r50_fpn", "faster_rcnn_r18_fpn", "mask_rcnn_r18_fpn"):
        cfg = load_config(CONFIGS / f"{name}.yaml")
        model = build_model(cfg, class_names=None if cfg["model"]["num_classes"] else ["a", "b"])
        assert isinstance(model, TwoStageDetector)
        assert (model.mask_head is not None) == name.startswith("mask")


def test_preprocessor_matches_torchvision():
    g = torch.Generator().manual_seed(0)
    sizes = [(50, 70), (64, 40)]
    imgs = [torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8) for h, w in sizes]
    batch = torch.zeros(2, 3, 64, 96, dtype=torch.uint8)  # collate: zero padded uint8 to a multiple of 32
    for i, im in enumerate(imgs):
        batch[i, :, : im.shape[1], : im.shape[2]] = im
    out = Preprocessor()(batch, sizes)
    tv = GeneralizedRCNNTransform(10, 1000, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    ref = tv.batch_images([tv.normalize(im.float() / 255) for im in imgs])
    assert out.shape == ref.shape == (2, 3, 64, 96) and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)
    # a batch that is not padded yet gets padded to the divisor, with zeros
    out = Preprocessor(size_divisor=32, channels_last=True)({"images": imgs[0][None], "image_sizes": [(50, 70)]})
    assert out.shape == (1, 3, 64, 96) and out.is_contiguous(memory_format=torch.channels_last)
    assert (out[..., 50:, :] == 0).all() and (out[..., 70:] == 0).all()
    with pytest.raises(ValueError, match="3 values"):
        Preprocessor(pixel_mean=(1.0, 2.0))
