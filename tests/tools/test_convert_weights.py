"""tools/convert_weights.py and detkit.weights.torchvision on torchvision state dicts (random weights)."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torchvision.models import resnet18
from torchvision.models.detection import fasterrcnn_resnet50_fpn, maskrcnn_resnet50_fpn

import detkit
from detkit.config import load_config
from detkit.models import build_model
from detkit.models.backbones.resnet import ResNet
from detkit.weights.torchvision import COCO_CATEGORY_IDS, COCO_CLASSES, ConversionError, convert_state_dict, detect_kind

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "convert_weights.py"
sys.path.insert(0, str(ROOT / "tools"))
import convert_weights  # noqa: E402


@pytest.fixture(scope="module")
def mask_state():
    torch.manual_seed(0)
    return maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91).state_dict()


def test_coco_classes_and_ids():
    assert len(COCO_CLASSES) == len(COCO_CATEGORY_IDS) == 80
    assert COCO_CATEGORY_IDS[:12] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13] and COCO_CATEGORY_IDS[-1] == 90
    assert COCO_CLASSES[0] == "person" and COCO_CLASSES[11] == "stop sign" and COCO_CLASSES[-1] == "toothbrush"


def test_mask_rcnn_layout_and_class_mapping(mask_state):
    assert detect_kind(mask_state) == "maskrcnn_resnet50_fpn"
    out, info = convert_state_dict(mask_state)
    assert info["num_classes"] == 80 and info["class_names"] == COCO_CLASSES
    model = build_model(load_config(ROOT / "configs/_base_/models/mask_rcnn_r50_fpn.yaml"))
    model.load_state_dict(out, strict=True)  # every key, every shape
    ids = torch.tensor(COCO_CATEGORY_IDS)
    cls_w = mask_state["roi_heads.box_predictor.cls_score.weight"]
    assert torch.equal(out["box_head.cls_score.weight"][:80], cls_w[ids])
    assert torch.equal(out["box_head.cls_score.weight"][80], cls_w[0])  # background last
    box_w = mask_state["roi_heads.box_predictor.bbox_pred.weight"].reshape(91, 4, -1)
    assert torch.equal(out["box_head.bbox_pred.weight"].reshape(80, 4, -1), box_w[ids])
    assert torch.equal(
        out["mask_head.logits.weight"], mask_state["roi_heads.mask_predictor.mask_fcn_logits.weight"][ids]
    )
    assert torch.equal(out["neck.lateral_convs.2.weight"], mask_state["backbone.fpn.inner_blocks.2.0.weight"])
    assert torch.equal(out["rpn_head.conv.0.0.weight"], mask_state["rpn.head.conv.0.0.weight"])
    assert torch.equal(out["mask_head.convs.3.0.bias"], mask_state["roi_heads.mask_head.3.0.bias"])
    assert torch.equal(out["backbone.layer4.2.conv3.weight"], mask_state["backbone.body.layer4.2.conv3.weight"])


def test_faster_rcnn_cli_writes_checkpoint(tmp_path):
    torch.manual_seed(0)
    state = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91).state_dict()
    src, dst = tmp_path / "tv.pth", tmp_path / "out" / "detkit.pth"
    torch.save(state, src)
    cfg = ROOT / "configs/_base_/models/faster_rcnn_r50_fpn.yaml"
    res = subprocess.run(
        [sys.executable, str(TOOL), "--from", "torchvision", str(src), str(dst), "--config", str(cfg)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "fasterrcnn_resnet50_fpn" in res.stdout
    ckpt = torch.load(dst, map_location="cpu", weights_only=True)
    meta = ckpt["meta"]
    assert meta["converted_from"] == "torchvision:fasterrcnn_resnet50_fpn" and meta["version"] == detkit.__version__
    assert meta["class_names"] == COCO_CLASSES
    assert meta["config"]["model"]["num_classes"] == 80
    assert meta["config"]["model"]["backbone"]["norm_eps"] == 0.0  # torchvision COCO v1 weights
    assert not any(k.startswith("mask_head.") for k in ckpt["model"])
    model = build_model(meta["config"], class_names=meta["class_names"])
    model.load_state_dict(ckpt["model"], strict=True)
    assert [p.name for p in dst.parent.iterdir()] == ["detkit.pth"]  # no temporary file left


def test_resnet_classifier(tmp_path):
    torch.manual_seed(0)
    net = resnet18()
    src, dst = tmp_path / "r18.pth", tmp_path / "r18_detkit.pth"
    torch.save(net.state_dict(), src)
    assert convert_weights.main(["--from", "torchvision", str(src), str(dst)]) == 0
    ckpt = torch.load(dst, map_location="cpu", weights_only=True)
    assert ckpt["meta"]["converted_from"] == "torchvision:resnet18" and ckpt["meta"]["class_names"] is None
    assert all(k.startswith("backbone.") for k in ckpt["model"]) and "backbone.fc.weight" not in ckpt["model"]
    backbone = ResNet(18, norm="BN", frozen_stages=0, init_checkpoint=str(dst))
    assert torch.equal(backbone.layer3[1].conv2.weight, net.layer3[1].conv2.weight)
    net.eval(), backbone.eval()
    x = torch.rand(1, 3, 64, 64)
    stem = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    torch.testing.assert_close(backbone(x)[0], net.layer1(stem))


def test_finetuned_head_keeps_its_classes():
    torch.manual_seed(0)
    state = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=4).state_dict()
    out, info = convert_state_dict(state)
    assert info["num_classes"] == 3 and info["class_names"] is None
    assert torch.equal(out["box_head.cls_score.weight"][3], state["roi_heads.box_predictor.cls_score.weight"][0])
    assert out["box_head.bbox_pred.weight"].shape[0] == 12


def test_bad_inputs_exit_2(tmp_path, capsys):
    dst = tmp_path / "out.pth"
    unknown = tmp_path / "unknown.pth"
    torch.save({"encoder.weight": torch.zeros(2)}, unknown)
    assert convert_weights.main(["--from", "torchvision", str(unknown), str(dst)]) == 2
    assert "unknown state dict" in capsys.readouterr().err
    assert convert_weights.main(["--from", "torchvision", str(tmp_path / "missing.pth"), str(dst)]) == 2
    assert "not found" in capsys.readouterr().err
    pickled = tmp_path / "code.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "obj": ConversionError("not a tensor")}, pickled)
    assert convert_weights.main(["--from", "torchvision", str(pickled), str(dst)]) == 2
    assert "holds Python objects" in capsys.readouterr().err
    assert not dst.exists()
    v2 = {
        "backbone.body.conv1.weight": torch.zeros(1),
        "roi_heads.box_predictor.cls_score.weight": torch.zeros(1),
        "roi_heads.box_head.0.0.weight": torch.zeros(1),
    }
    with pytest.raises(ConversionError, match="v2"):
        detect_kind(v2)


UNREADABLE = {
    "random": (lambda p: p.write_bytes(bytes(range(7, 256)) * 20), "unknown binary content"),
    "empty": (lambda p: p.write_bytes(b""), "is empty"),
    "yaml": (lambda p: p.write_text("model:\n  type: YOLO\n  num_classes: 3\n"), "is a YAML file"),
    "missing": (lambda p: None, "not found"),
}


@pytest.mark.parametrize("kind", list(UNREADABLE))
def test_unreadable_weights_file_is_one_line_exit_2(tmp_path, kind):
    write, said = UNREADABLE[kind]
    src, dst = tmp_path / f"{kind}.pth", tmp_path / "out.pth"
    write(src)
    before = src.read_bytes() if src.exists() else None
    res = subprocess.run(
        [sys.executable, str(TOOL), "--from", "torchvision", str(src), str(dst)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith("convert_weights: error: weights file") and str(src) in lines[0] and said in lines[0]
    assert not dst.exists() and (src.read_bytes() if src.exists() else None) == before


def test_dst_never_overwrites_src(tmp_path, capsys):
    src = tmp_path / "r18.pth"
    torch.save(resnet18().state_dict(), src)
    before = src.read_bytes()
    assert convert_weights.main(["--from", "torchvision", str(src), str(src)]) == 2
    assert "DST" in capsys.readouterr().err and src.read_bytes() == before
    assert convert_weights.main(["--from", "torchvision", str(src), str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


# --- Ultralytics YOLOv8 (state dicts made by Ultralytics' own model classes, random weights) ---------------


def _yolov8(seg: bool, nc: int = 80):
    """A YOLOv8n(-seg) of Ultralytics' own classes with random weights and BN statistics."""
    tasks = pytest.importorskip("ultralytics.nn.tasks")  # a failure under `make test` (tests/conftest.py)
    torch.manual_seed(0)
    cls = tasks.SegmentationModel if seg else tasks.DetectionModel
    model = cls("yolov8n-seg.yaml" if seg else "yolov8n.yaml", nc=nc, verbose=False)
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


@pytest.mark.parametrize("seg", [False, True], ids=["detect", "segment"])
def test_ultralytics_cli_outputs_equal_after_conversion(tmp_path, seg):
    from detkit import init_model
    from detkit.weights.ultralytics import ultralytics_layout_outputs

    ul = _yolov8(seg)
    src, dst = tmp_path / "yolov8n_state.pth", tmp_path / "yolov8n_detkit.pth"
    torch.save(ul.state_dict(), src)
    config = "yolo_n_seg_coco" if seg else "yolo_n_coco"  # packaged configs, by name
    assert convert_weights.main(["--from", "ultralytics", str(src), str(dst), "--config", config]) == 0
    ckpt = torch.load(dst, map_location="cpu", weights_only=True)
    meta = ckpt["meta"]
    assert meta["converted_from"] == ("ultralytics:yolov8n-seg" if seg else "ultralytics:yolov8n")
    assert meta["class_names"] == COCO_CLASSES and meta["config"]["model"]["num_classes"] == 80
    assert all(v.dtype == torch.float32 for v in ckpt["model"].values() if v.is_floating_point())
    dk = init_model(checkpoint=str(dst), device="cpu")  # the stored config builds the model
    x = torch.rand(1, 3, 128, 160, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = ul(x)
        ours = ultralytics_layout_outputs(dk, x)
        protos = dk.forward_raw(x)[2] if seg else None
    pred = ref[0][0] if seg else ref[0]  # [1, 4 + C (+ coefficients), A]
    torch.testing.assert_close(ours[:, :4], pred[:, :4], atol=1e-3, rtol=0)  # boxes, pixels: float rounding only
    torch.testing.assert_close(ours[:, 4:], pred[:, 4:], atol=1e-5, rtol=0)  # class scores (and coefficients)
    if seg:
        torch.testing.assert_close(protos, ref[0][1], atol=1e-4, rtol=0)  # the prototypes


def test_ultralytics_without_config_checks_the_layout(tmp_path, capsys):
    from detkit.weights.ultralytics import detect_layout, layout_model

    ul = _yolov8(seg=False, nc=3)
    src, dst = tmp_path / "sd.pth", tmp_path / "out.pth"
    torch.save({"model": ul.half().state_dict()}, src)  # under 'model', half precision, as Ultralytics stores it
    layout = detect_layout(torch.load(src, weights_only=True)["model"])
    assert layout == {"scale": "n", "seg": False, "num_classes": 3, "reg_max": 16}
    assert layout_model(layout)["neck"] == {"type": "PAFPN", "num_blocks": 1}
    assert convert_weights.main(["--from", "ultralytics", str(src), str(dst)]) == 0
    assert "ultralytics:yolov8n" in capsys.readouterr().out
    meta = torch.load(dst, map_location="cpu", weights_only=True)["meta"]
    assert meta["config"] is None and meta["class_names"] is None  # 3 classes: no names to assume


def test_ultralytics_bad_inputs_exit_2(tmp_path, capsys):
    ul = _yolov8(seg=False)
    src, dst = tmp_path / "sd.pth", tmp_path / "out.pth"
    torch.save(ul.state_dict(), src)
    # a config of another scale: the weights do not fit its model
    assert convert_weights.main(["--from", "ultralytics", str(src), str(dst), "--config", "yolo_s_coco"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("convert_weights: error:") and "yolov8n" in err and "do not fit the config's model" in err
    # a pickled Ultralytics checkpoint is not unpickled; the message says how to save a state dict
    pickled = tmp_path / "yolov8n.pt"
    torch.save({"model": ul, "epoch": -1}, pickled)
    assert convert_weights.main(["--from", "ultralytics", str(pickled), str(dst)]) == 2
    err = capsys.readouterr().err
    assert "holds Python objects" in err and "state_dict()" in err
    # torchvision weights given as Ultralytics ones
    tv = tmp_path / "r18.pth"
    torch.save(resnet18().state_dict(), tv)
    assert convert_weights.main(["--from", "ultralytics", str(tv), str(dst)]) == 2
    assert "not a YOLOv8 detect / segment state dict" in capsys.readouterr().err
    assert not dst.exists()
    with pytest.raises(SystemExit) as exit_info:  # argparse: a flag of the other converter
        convert_weights.main(["--from", "ultralytics", str(src), str(dst), "--norm-eps", "0"])
    assert exit_info.value.code == 2 and "--norm-eps applies to --from torchvision only" in capsys.readouterr().err


# --- refusals before any work: DST exists, a --config the weights do not fit --------------------------------


@pytest.fixture(scope="module")
def tv_bn_state():
    """fasterrcnn_resnet50_fpn(weights=None): BatchNorm, so the state dict holds num_batches_tracked."""
    torch.manual_seed(0)
    state = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91).state_dict()
    assert any(k.endswith("num_batches_tracked") for k in state)
    return state


@pytest.mark.parametrize("kind", ["json", "yaml", "checkpoint"])
def test_existing_dst_is_never_overwritten(tmp_path, capsys, kind):
    src = tmp_path / "r18.pth"
    torch.save(resnet18().state_dict(), src)
    dst = {"json": tmp_path / "victim.json", "yaml": tmp_path / "cfg.yaml", "checkpoint": tmp_path / "best.pth"}[kind]
    dst.write_bytes(b'{"a": 1}\n')
    before = dst.read_bytes()
    for source in ("torchvision", "ultralytics"):
        assert convert_weights.main(["--from", source, str(src), str(dst)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"DST {dst} exists already" in err and "choose a new path" in err, err
        assert dst.read_bytes() == before


def test_bn_state_dict_loads_into_the_stored_config(tmp_path, tv_bn_state):
    from detkit import init_model

    src, dst = tmp_path / "tv.pth", tmp_path / "out.pth"
    torch.save(tv_bn_state, src)
    argv = ["--from", "torchvision", str(src), str(dst), "--config", "faster_rcnn_r50_fpn_1x_coco"]
    assert convert_weights.main(argv) == 0
    ckpt = torch.load(dst, map_location="cpu", weights_only=True)
    assert not any(k.endswith("num_batches_tracked") for k in ckpt["model"])
    init_model(checkpoint=str(dst), device="cpu")  # counted strict load: no unexpected keys


@pytest.mark.parametrize("config", ["yolo_n_coco", "faster_rcnn_r18_fpn_shapes"])
def test_torchvision_config_of_another_architecture_exit_2(tmp_path, capsys, tv_bn_state, config):
    src, dst = tmp_path / "tv.pth", tmp_path / "out.pth"
    torch.save(tv_bn_state, src)
    assert convert_weights.main(["--from", "torchvision", str(src), str(dst), "--config", config]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not err.rstrip().endswith("..."), err
    assert f"--config {config} does not fit" in err and "same architecture" in err and "leave --config out" in err
    assert "tensors fit" in err and not dst.exists()


def test_norm_eps_only_where_the_backbone_takes_it():
    from detkit.weights.torchvision import _meta_config

    info = {"num_classes": 80}
    yolo = _meta_config(load_config("yolo_n_coco"), info, 0.0)
    assert "norm_eps" not in yolo["model"]["backbone"]
    rcnn = _meta_config(load_config("faster_rcnn_r50_fpn_1x_coco"), info, 0.0)
    assert rcnn["model"]["backbone"]["norm_eps"] == 0.0


def test_num_classes_mismatch_says_the_fix(tmp_path, capsys):
    torch.manual_seed(0)
    src, dst = tmp_path / "tv5.pth", tmp_path / "out.pth"
    torch.save(fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=5).state_dict(), src)
    argv = ["--from", "torchvision", str(src), str(dst), "--config", "faster_rcnn_r50_fpn_1x_coco"]
    assert convert_weights.main(argv) == 2
    err = capsys.readouterr().err
    assert "model.num_classes=80 but the weights have 4 classes" in err
    assert "leave --config out" in err and "model.num_classes is 4" in err and not dst.exists()


def test_ultralytics_mismatch_message_keeps_its_fix(tmp_path, capsys):
    ul = _yolov8(seg=False)
    src, dst = tmp_path / "sd.pth", tmp_path / "out.pth"
    torch.save(ul.state_dict(), src)
    for config in ("yolo_s_coco", "yolo_n_seg_coco"):
        assert convert_weights.main(["--from", "ultralytics", str(src), str(dst), "--config", config]) == 2
        err = capsys.readouterr().err
        assert "use a YOLO config of the same scale and head" in err, err
    assert not dst.exists()


def test_a_resnet_classifier_is_checked_against_the_backbone_of_config(tmp_path, capsys):
    """torchvision ResNet weights with --config: the config's backbone must take them (before, stored unchecked)."""
    src, dst = tmp_path / "r18.pth", tmp_path / "out.pth"
    torch.save(resnet18().state_dict(), src)
    base = ["--from", "torchvision", str(src), str(dst), "--config"]
    for config, why in (
        ("resnet50_imagenet", "of another shape"),
        ("yolo_n_shapes", "0 of 135 tensors fit"),
        ("faster_rcnn_r18_fpn_shapes", "40 unexpected (backbone.bn1.running_mean"),  # GN: no running statistics
    ):
        assert convert_weights.main([*base, config]) == 2
        err = capsys.readouterr().err
        assert f"--config {config} does not fit the converted torchvision resnet18 weights (its backbone)" in err
        assert why in err and "a ResNet of depth 18 with norm BN" in err and not dst.exists()
    assert convert_weights.main([*base, "resnet18_shapes"]) == 0  # num_classes null: the backbone alone is built
    assert torch.load(dst, weights_only=True)["meta"]["config"]["model"]["backbone"]["depth"] == 18
