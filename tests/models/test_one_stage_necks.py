"""OneStageDetector with necks other than PAFPN: the backbone's strides reach the neck under its own name."""

from pathlib import Path

import pytest
import torch

from detkit.config import load_config
from detkit.models import build_model
from detkit.models.detectors.one_stage import OneStageDetector

ROOT = Path(__file__).resolve().parents[2]
TINY_BACKBONE = {"type": "CSPDarknet", "depth_multiple": 0.33, "width_multiple": 0.125}


def _batch(h=64, w=96):
    images = torch.randint(0, 60, (2, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    images[0, :, 10:40, 20:60] = 230
    targets = [
        {"boxes": torch.tensor([[20.0, 10.0, 60.0, 40.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)},
    ]
    return {"images": images, "image_sizes": [(h, w)] * 2, "targets": targets}


def test_yolo_config_with_an_fpn_neck_builds():
    cfg = load_config(
        ROOT / "configs/yolo/yolo_n_shapes.yaml",
        overrides=["model.neck={type: FPN, out_channels: 64, extra: null}", "model.num_classes=3"],
    )
    model = build_model(cfg)
    assert model.neck.strides == model.backbone.strides == model.head.strides == [8, 16, 32]


@pytest.mark.parametrize("extra,strides", [(None, [4, 8, 16]), ("maxpool", [4, 8, 16, 32])])
def test_yolo_with_an_fpn_neck_trains_a_step_and_predicts(extra, strides):
    torch.manual_seed(0)
    backbone = {**TINY_BACKBONE, "out_indices": (1, 2, 3)}  # strides 4, 8, 16: not FPN's default 8, 16, 32
    model = OneStageDetector(
        backbone=backbone,
        neck={"type": "FPN", "out_channels": 16, "extra": extra},
        head={"type": "YOLOHead"},
        num_classes=3,
    )
    assert model.neck.strides == model.head.strides == strides
    losses = model.train().loss(_batch())
    assert set(losses) == {"yolo/box", "yolo/cls", "yolo/dfl"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    torch.optim.SGD(model.parameters(), lr=0.01).step()
    dets = model.eval().predict(_batch(), score_thr=0.0, max_per_img=5)
    assert len(dets) == 2
    for d in dets:
        assert d["boxes"].shape == (5, 4) and d["scores"].shape == (5,) and d["labels"].dtype == torch.int64
        assert d["boxes"][:, 2].max() <= 96 and d["boxes"][:, 3].max() <= 64 and d["boxes"].min() >= 0


def test_pafpn_still_gets_the_backbone_strides():
    backbone = {**TINY_BACKBONE, "out_indices": (1, 2, 3)}
    model = OneStageDetector(backbone=backbone, neck={"type": "PAFPN"}, head={"type": "YOLOHead"}, num_classes=3)
    assert model.neck.strides == model.head.strides == [4, 8, 16]


def test_a_classifier_takes_an_fpn_neck_too():
    """Classifier built its neck as YOLO did (strides=): FPN, whose argument is in_strides, did not build."""
    import detkit
    from detkit.config import load_config
    from detkit.models.fit_check import check_parts_fit

    cfg = load_config(
        "resnet18_shapes", ["model.neck={type: FPN, out_channels: 64, extra: null}", "model.num_classes=3"]
    )
    model = detkit.build_model(cfg)
    assert type(model.neck).__name__ == "FPN"
    check_parts_fit(model)
