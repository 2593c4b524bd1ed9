"""The ONNX metadata says how to preprocess (read from the config and the model); verify_onnx takes image paths."""

import json

import cv2
import onnx
import pytest

pytest.importorskip("onnxruntime")


def _meta(path) -> dict:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_yolo_metadata_from_pipeline(yolo, tmp_path):
    from detkit.export import export_onnx

    meta = _meta(export_onnx(yolo, tmp_path / "y.onnx", (64, 64)))
    assert meta["task"] == "detect" and json.loads(meta["input_size"]) == [128, 128]
    pre = json.loads(meta["preprocess"])
    assert pre["resize"] == "letterbox" and pre["pad_value"] == 114 and pre["centred"] is True
    assert pre["upscale"] is True and pre["interpolation"] == "bilinear" and pre["normalize"]["in_graph"]
    assert meta["stride"] == "32" and json.loads(meta["max_per_img"]) == yolo.head.test_cfg["max_per_img"]
    assert json.loads(meta["nms_pre"]) == yolo.head.test_cfg["nms_pre"]


def test_mask_rcnn_metadata(mask_rcnn, tmp_path):
    from detkit.export import export_onnx

    meta = _meta(export_onnx(mask_rcnn, tmp_path / "m.onnx", (96, 96)))
    pre = json.loads(meta["preprocess"])
    assert meta["task"] == "segment" and "input_size" not in meta  # the size depends on the image
    assert pre["resize"] == "resize-shortest-edge" and pre["short_side"] == [96] and pre["max_size"] == 160
    assert pre["normalize"]["mean"] == pytest.approx([123.675, 116.28, 103.53], abs=1e-3)


def test_verify_onnx_takes_paths(yolo, shapes, tmp_path):
    from detkit.export import export_onnx, verify_onnx

    out = export_onnx(yolo, tmp_path / "y.onnx", (64, 64))
    paths = []
    for i, img in enumerate(shapes([(96, 128), (128, 96)])):
        paths.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(paths[-1]), img[:, :, ::-1])
    stats = verify_onnx(yolo, out, [str(paths[0]), paths[1]])
    assert stats["images"] == 2 and stats["ok"], stats
