"""tools/export.py: ONNX export of a checkpoint, verified with onnxruntime; bad input is a one-line error."""

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import detkit
from detkit.config import load_config

pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "model.neck.out_channels=32",
    "model.rpn_head.in_channels=32",
    "model.box_head.in_channels=32",
    "model.box_head.representation_size=64",
    "model.rpn_head.pre_nms_top_n_test=200",
    "model.rpn_head.post_nms_top_n_test=60",
    "data.val.img_dir=nowhere",
    "data.val.pipeline=[{type: ResizeShortestEdge, short_sizes: [96], max_size: 128}]",
]


def _checkpoint(tmp_path, config, overrides, bias=True):
    torch.manual_seed(0)
    cfg = load_config(ROOT / config, overrides)
    model = detkit.build_model(cfg, class_names=["a", "b"])
    if bias:
        with torch.no_grad():
            model.box_head.cls_score.bias[:-1] += 4.0
    path = tmp_path / "model.pth"
    torch.save({"model": model.state_dict(), "meta": {"config": cfg, "class_names": ["a", "b"]}}, path)
    return path


def _export(*args):
    return subprocess.run(
        [sys.executable, str(ROOT / "tools/export.py"), *map(str, args)], capture_output=True, text=True, timeout=600
    )


def test_export_and_verify(tmp_path):
    ckpt = _checkpoint(tmp_path, "configs/faster_rcnn/faster_rcnn_r18_fpn_shapes.yaml", TINY)
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8))
    out = tmp_path / "m.onnx"
    proc = _export(
        "-", ckpt, "--format", "onnx", "--out", out, "--verify", "--image-size", "96,128", "--verify-images", img, img
    )
    assert proc.returncode == 0, proc.stderr
    assert "dynamic batch and image size" in proc.stdout and ": OK" in proc.stdout
    assert out.is_file() and not list(tmp_path.glob(".*tmp"))
    # without --verify-images (and no data.val images) synthetic shapes images are used
    proc = _export("-", ckpt, "--out", out, "--verify", "--static", "--image-size", "128,128")
    assert proc.returncode == 0 and ": OK" in proc.stdout, proc.stdout + proc.stderr


def test_bad_inputs(tmp_path):
    ckpt = _checkpoint(tmp_path, "configs/mask_rcnn/mask_rcnn_r18_fpn_shapes.yaml", [], bias=False)
    proc = _export("-", tmp_path / "missing.pth", "--out", tmp_path / "m.onnx")
    assert proc.returncode == 2 and "checkpoint not found" in proc.stderr
    proc = _export("-", ckpt, "--format", "tflite", "--out", tmp_path / "m.onnx")
    assert proc.returncode == 2


def test_max_det_is_a_hidden_old_spelling_of_max_per_img(capsys):
    from detkit.cli.export import parse_args

    args = parse_args(["c.yaml", "w.pth", "--out", "m.onnx", "--max-det", "7"])
    assert args.max_per_img == 7
    assert capsys.readouterr().err == "export: note: --max-det is an old spelling: write --max-per-img\n"
    assert parse_args(["c.yaml", "w.pth", "--out", "m.onnx", "--max-per-img", "9"]).max_per_img == 9
    assert capsys.readouterr().err == ""
    with pytest.raises(SystemExit) as stop:
        parse_args(["c.yaml", "w.pth", "--out", "m.onnx", "--max-det", "7", "--max-per-img", "9"])
    assert stop.value.code == 2 and "give --max-per-img only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    shown = capsys.readouterr().out
    assert "--max-per-img" in shown and "--max-det" not in shown


def test_verify_images_take_folders_and_patterns(tmp_path):
    from detkit.cli.errors import UserError
    from detkit.cli.export import image_inputs

    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    for name in ("a.png", "sub/b.jpg"):
        cv2.imwrite(str(tmp_path / "imgs" / name), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "imgs" / "notes.txt").write_text("x")
    assert [p.name for p in image_inputs([str(tmp_path / "imgs")])] == ["a.png", "b.jpg"]
    assert [p.name for p in image_inputs([str(tmp_path / "imgs" / "*.png")])] == ["a.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="--verify-images: folder .*empty holds no image"):
        image_inputs([str(tmp_path / "empty")])
    with pytest.raises(UserError, match="holds no image"):
        image_inputs([str(tmp_path / "imgs" / "notes.txt")])
    assert image_inputs([]) == []


def test_verify_that_compared_no_detection_says_so(tmp_path):
    ckpt = _checkpoint(
        tmp_path, "configs/faster_rcnn/faster_rcnn_r18_fpn_shapes.yaml", [*TINY, "model.box_head.score_thr=0.99"]
    )
    proc = _export("-", ckpt, "--out", tmp_path / "m.onnx", "--verify", "--image-size", "96,128")
    assert proc.returncode == 0, proc.stderr
    assert "0 PyTorch / 0 onnxruntime detections" in proc.stdout  # every score under the threshold 0.99
    assert "WARNING: --verify compared nothing: no detection on either side" in proc.stderr


def test_a_missing_onnx_package_is_one_line_with_the_install_command(tmp_path, monkeypatch, capsys):
    import importlib.util

    from detkit.cli.export import main

    ckpt = _checkpoint(tmp_path, "configs/faster_rcnn/faster_rcnn_r18_fpn_shapes.yaml", TINY)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    assert main(["-", str(ckpt), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert "ONNX export needs onnx (optional): pip install 'detkit[onnx]'" in err and "\n" not in err
    assert not (tmp_path / "m.onnx").exists()
