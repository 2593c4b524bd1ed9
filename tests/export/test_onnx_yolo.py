"""ONNX export of YOLO models (NMS in the graph or not), verified with onnxruntime against model.predict."""

import numpy as np
import pytest
import torch

from detkit.export import export_onnx, get_export_module, run_onnx, verify_onnx

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def model(yolo):
    return yolo


@pytest.mark.parametrize("nms", [True, False])
def test_export_matches_predict(model, tmp_path, nms):
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, (100, 128, 3), dtype=np.uint8),
        rng.integers(0, 256, (128, 90, 3), dtype=np.uint8),
        rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
    ]
    path = export_onnx(model, tmp_path / "yolo.onnx", image_size=(128, 128), batch_size=2, nms=nms)
    stats = verify_onnx(model, path, images, batch_size=2, nms=nms)
    assert stats["ok"], stats
    assert stats["num_ref"] > 5
    import json

    import onnx

    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["class_names"]) == list(model.class_names)  # labels -> names without the checkpoint
    assert "category_ids" not in meta  # a model that knows no dataset ids


def test_category_ids_in_the_metadata(model, tmp_path):
    """The dataset's category ids (1, 3, 7, ... of a COCO json) beside the names: a deployment writes COCO results."""
    import json

    import onnx

    ids = [3 + 2 * k for k in range(len(model.class_names))]
    model.cat_ids = ids
    try:
        path = export_onnx(model, tmp_path / "ids.onnx", image_size=(64, 64), batch_size=1, nms=True)
    finally:
        del model.cat_ids
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["category_ids"]) == ids and len(json.loads(meta["class_names"])) == len(ids)


def test_dynamic_batch_and_size(model, tmp_path):
    path = export_onnx(model, tmp_path / "raw.onnx", image_size=(128, 128), batch_size=2, nms=False)
    module = get_export_module(model, nms=False)
    images, sizes = module.example_inputs(3, (96, 160))  # another batch and image size than traced
    boxes, scores = run_onnx(path, [images, sizes])
    with torch.no_grad():
        ref_boxes, ref_scores = module(images, sizes)
    assert boxes.shape == (3, (12 * 20 + 6 * 10 + 3 * 5), 4) and scores.shape[-1] == 3
    np.testing.assert_allclose(boxes, ref_boxes.numpy(), atol=1e-3)
    np.testing.assert_allclose(scores, ref_scores.numpy(), atol=1e-5)
