"""ONNX export of instance masks (Mask R-CNN and YOLO-seg), verified with onnxruntime against model.predict."""

import numpy as np
import pytest
import torch

from detkit.data.collate import collate
from detkit.export import export_onnx, get_export_module, run_onnx, verify_onnx

pytest.importorskip("onnxruntime")

MIXED = [(100, 150), (200, 120), (64, 64), (90, 300), (128, 128)]


def _wrapper_vs_predict(model, shapes, **options):
    batch = collate([{"image": im, "image_id": i} for i, im in enumerate(shapes([(100, 128), (128, 96), (64, 64)]))])
    wrap = get_export_module(model, **options)
    inputs = wrap.inputs_from_batch(batch)
    with torch.no_grad():
        ref = model.predict(batch)
        got = wrap.outputs_to_predictions(wrap(*inputs), inputs)
    assert sum(len(r["boxes"]) for r in ref) > 20
    for r, g in zip(ref, got):
        assert set(g) == {"boxes", "scores", "labels", "masks"}
        for key in g:
            assert torch.equal(r[key], g[key]), key
        assert r["masks"].any(dim=(1, 2)).sum() >= len(r["masks"]) // 2  # real masks, not empty ones


def test_mask_rcnn_wrapper_equals_predict(mask_rcnn, shapes):
    _wrapper_vs_predict(mask_rcnn, shapes)


@pytest.mark.parametrize("nms", [True, False])
def test_yolo_seg_wrapper_equals_predict(yolo_seg, shapes, nms):
    _wrapper_vs_predict(yolo_seg, shapes, nms=nms)


def test_mask_rcnn_onnx_dynamic_batch_and_size(mask_rcnn, shapes, tmp_path):
    path = export_onnx(mask_rcnn, tmp_path / "mask_rcnn.onnx", image_size=(128, 128), batch_size=2)
    # batches of 3 mixed sizes against a graph traced at 2 x 128x128: matched detections, mask IoU
    stats = verify_onnx(mask_rcnn, path, shapes(MIXED), batch_size=3)
    assert stats["ok"], stats
    assert stats["num_ref"] >= 100 and stats["matched"] == stats["num_ref"] == stats["num_other"]
    assert stats["mask_pairs"] == stats["matched"] and stats["min_mask_iou"] >= 0.99
    wrap = get_export_module(mask_rcnn)
    masks = run_onnx(path, wrap.example_inputs(1, (96, 160)))[4]
    assert masks.shape == (1, 100, 28, 28) and masks.dtype == np.float32
    assert masks.min() >= 0.0 and masks.max() <= 1.0


@pytest.mark.parametrize("nms", [True, False])
def test_yolo_seg_onnx_dynamic_batch_and_size(yolo_seg, shapes, tmp_path, nms):
    path = export_onnx(yolo_seg, tmp_path / "seg.onnx", image_size=(128, 128), batch_size=2, nms=nms)
    stats = verify_onnx(yolo_seg, path, shapes(MIXED), batch_size=3, nms=nms)
    assert stats["ok"], stats
    assert stats["num_ref"] >= 50 and stats["matched"] == stats["num_ref"] == stats["num_other"]
    assert stats["mask_pairs"] == stats["matched"] and stats["min_mask_iou"] >= 0.99
    wrap = get_export_module(yolo_seg, nms=nms)
    image = torch.from_numpy(shapes([(96, 160)], seed=9)[0]).permute(2, 0, 1)[None]  # another batch and size
    images, sizes = image.contiguous(), torch.tensor([[96, 160]])
    outputs = run_onnx(path, (images, sizes))
    if nms:
        assert outputs[4].shape == (1, wrap.max_per_img, 96, 160)  # masks at the input size
    else:
        assert outputs[2].shape == (1, 12 * 20 + 6 * 10 + 3 * 5, 8) and outputs[3].shape == (1, 8, 24, 40)
    with torch.no_grad():
        ref = wrap(images, sizes)
    for got, want in zip(outputs, ref):
        np.testing.assert_allclose(got, want.numpy(), atol=1e-3)
