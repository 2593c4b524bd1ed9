"""Backbone init_checkpoint from a detkit classifier checkpoint: the backbone weights go into a detector, the head
is dropped, and what was taken, dropped, missing and unexpected is reported; bad files are clear errors."""

from __future__ import annotations

import logging

import pytest
import torch

import detkit.models  # noqa: F401  (registers the parts)
from detkit.models.backbones.cspdarknet import CSPDarknet
from detkit.models.backbones.resnet import ResNet
from detkit.models.build import build_model
from detkit.utils.checkpoint import CheckpointError, CheckpointMismatchError

CSP = {"type": "CSPDarknet", "scale": "n", "out_indices": [4]}
R18 = {"type": "ResNet", "depth": 18, "norm": "BN", "frozen_stages": -1, "out_indices": [3]}


def _classifier_checkpoint(path, backbone: dict, num_classes: int = 4, seed: int = 0):
    """A detkit checkpoint of a Classifier with random weights (as tools/train.py writes best.pth)."""
    torch.manual_seed(seed)
    cfg = {
        "model": {"type": "Classifier", "num_classes": num_classes, "backbone": backbone, "head": {"type": "ClsHead"}}
    }
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()  # nothing left at an initial value by chance
    state = model.state_dict()
    torch.save({"model": state, "meta": {"config": cfg, "epoch": 7, "class_names": model.class_names}}, path)
    return state


def _yolo(init: str, scale: str = "n") -> dict:
    backbone = {"type": "CSPDarknet", "scale": scale, "init_checkpoint": init}
    return {
        "model": {
            "type": "OneStageDetector",
            "num_classes": 4,
            "backbone": backbone,
            "neck": {"type": "PAFPN", "num_blocks": 1},
            "head": {"type": "YOLOHead"},
        }
    }


def test_yolo_detector_takes_the_classifier_backbone_and_reports_the_keys(tmp_path, caplog):
    path = tmp_path / "cls.pth"
    state = _classifier_checkpoint(path, CSP)
    with caplog.at_level(logging.INFO, logger="detkit"):
        det = build_model(_yolo(str(path)))
    backbone = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    for k, v in det.backbone.state_dict().items():
        torch.testing.assert_close(v, backbone[k], msg=k)  # every tensor came from the classifier
    report = det.backbone.init_report
    assert sorted(report.loaded) == sorted(backbone) and len(report.loaded) == len(det.backbone.state_dict())
    assert report.dropped == ["head.fc.bias", "head.fc.weight"]
    assert report.missing == [] and report.unexpected == []
    assert f"{len(backbone)} tensors loaded from the Classifier checkpoint (epoch 7)" in caplog.text
    assert "2 outside the backbone dropped (head.fc.bias, head.fc.weight)" in caplog.text


def test_resnet_classifier_into_a_gn_detector_backbone_reports_unexpected_and_missing(tmp_path, caplog):
    path = tmp_path / "r18.pth"
    state = _classifier_checkpoint(path, R18)
    with caplog.at_level(logging.INFO, logger="detkit"):
        backbone = ResNet(depth=18, norm="GN", frozen_stages=0, init_checkpoint=str(path))
    torch.testing.assert_close(backbone.layer3[1].conv2.weight, state["backbone.layer3.1.conv2.weight"])
    report = backbone.init_report
    assert "bn1.running_mean" in report.unexpected and "bn1.num_batches_tracked" in report.unexpected
    assert report.missing == [] and "bn1.weight" in report.loaded  # GN has the affine weights only
    same = ResNet(depth=18, norm="BN", frozen_stages=0, out_indices=(0, 1, 2, 3), init_checkpoint=str(path))
    assert same.init_report.unexpected == [] and same.init_report.missing == []


def test_timm_backbone_takes_a_timm_classifier_backbone(tmp_path):
    pytest.importorskip("timm")
    path = tmp_path / "timm.pth"
    spec = {"type": "TimmBackbone", "model_name": "resnet18", "out_indices": [4]}
    state = _classifier_checkpoint(path, spec)
    from detkit.models.backbones.timm import TimmBackbone

    det_backbone = TimmBackbone("resnet18", out_indices=(2, 3, 4), init_checkpoint=str(path))
    torch.testing.assert_close(det_backbone.body.layer4[0].conv1.weight, state["backbone.body.layer4.0.conv1.weight"])
    assert det_backbone.init_report.dropped == ["head.fc.bias", "head.fc.weight"]


def test_a_checkpoint_that_does_not_fit_is_a_clear_error(tmp_path):
    small = tmp_path / "n.pth"
    _classifier_checkpoint(small, CSP)
    with pytest.raises(CheckpointMismatchError, match=r"n\.pth does not fit this CSPDarknet .* of another shape"):
        build_model(_yolo(str(small), scale="s"))
    resnet = tmp_path / "r18.pth"
    _classifier_checkpoint(resnet, R18)
    with pytest.raises(CheckpointMismatchError, match=r"r18\.pth is a Classifier checkpoint with a ResNet backbone"):
        CSPDarknet(scale="n", init_checkpoint=str(resnet))
    with pytest.raises(CheckpointMismatchError, match=r"with a CSPDarknet backbone, not a ResNet"):
        ResNet(depth=18, init_checkpoint=str(small))
    headless = tmp_path / "headless.pth"
    torch.save({"model": {"head.fc.weight": torch.zeros(2, 2)}, "meta": {}}, headless)
    with pytest.raises(CheckpointMismatchError, match=r"headless\.pth is a detkit checkpoint without backbone\.\*"):
        CSPDarknet(scale="n", init_checkpoint=str(headless))
    foreign = tmp_path / "foreign.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointMismatchError, match=r"none of its 1 tensors is a CSPDarknet tensor"):
        CSPDarknet(scale="n", init_checkpoint=str(foreign))
    with pytest.raises(CheckpointError, match=r"model\.backbone\.init_checkpoint"):
        CSPDarknet(scale="n", init_checkpoint=str(tmp_path / "missing.pth"))


def test_plain_backbone_state_dict_loads(tmp_path):
    torch.manual_seed(1)
    src = CSPDarknet(scale="n")
    path = tmp_path / "plain.pth"
    torch.save({"state_dict": src.state_dict()}, path)
    dst = CSPDarknet(scale="n", out_indices=(4,), init_checkpoint=str(path))
    torch.testing.assert_close(dst.stages[3][0].conv.weight, src.stages[3][0].conv.weight)
    assert dst.init_report.source == "the state dict" and dst.init_report.dropped == []


def test_init_model_with_a_checkpoint_does_not_read_the_start_weights_again(tmp_path):
    import detkit

    cls_path = tmp_path / "cls.pth"
    _classifier_checkpoint(cls_path, CSP)
    cfg = _yolo(str(cls_path))
    det = build_model(cfg, class_names=["a", "b", "c", "d"])
    with torch.no_grad():
        det.backbone.stem.conv.weight.add_(1.0)  # "trained" after the init
    ckpt = tmp_path / "det.pth"
    torch.save({"model": det.state_dict(), "meta": {"class_names": ["a", "b", "c", "d"], "config": cfg}}, ckpt)
    cls_path.unlink()  # the classifier moved away since training
    model = detkit.init_model(cfg, str(ckpt), device="cpu")
    torch.testing.assert_close(model.backbone.stem.conv.weight, det.backbone.stem.conv.weight)
    assert model.cfg["model"]["backbone"]["init_checkpoint"] == str(cls_path)  # the config as given
    assert cfg["model"]["backbone"]["init_checkpoint"] == str(cls_path)  # not modified
