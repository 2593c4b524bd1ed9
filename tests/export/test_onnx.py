"""ONNX export of a tiny random-weight Faster R-CNN, verified with onnxruntime against PyTorch."""

import numpy as np
import pytest
import torch
from torch import nn

from detkit.data.collate import collate
from detkit.export import ExportError, compare_predictions, export_onnx, get_export_module, run_onnx, verify_onnx
from detkit.ops.batched import per_image_topk

pytest.importorskip("onnxruntime")

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model(faster_rcnn):
    return faster_rcnn


def _images(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in sizes]


def test_export_wrapper_equals_predict(model):
    batch = collate([{"image": im, "image_id": i} for i, im in enumerate(_images([(100, 128), (128, 96), (64, 64)]))])
    wrap = get_export_module(model)
    inputs = wrap.inputs_from_batch(batch)
    with torch.no_grad():
        ref = model.predict(batch)
        got = wrap.outputs_to_predictions(wrap(*inputs), inputs)
    for r, g in zip(ref, got):
        assert len(r["boxes"]) > 0
        assert torch.equal(r["boxes"], g["boxes"]) and torch.equal(r["labels"], g["labels"])
        assert torch.equal(r["scores"], g["scores"])
    assert model.fast_predict is False or wrap.model is not model  # the user's model is not changed


def test_onnx_dynamic_batch_and_size_verified(model, tmp_path):
    path = export_onnx(model, tmp_path / "frcnn.onnx", image_size=(128, 128), batch_size=2)
    import onnx

    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["images", "image_sizes"]
    assert [o.name for o in graph.output] == ["boxes", "scores", "labels", "num_dets"]
    # other batch sizes and image sizes than the traced ones, mixed sizes padded into one batch
    stats = verify_onnx(model, path, _images([(100, 150), (200, 120), (64, 64), (90, 300), (128, 128)]), batch_size=3)
    assert stats["ok"], stats
    assert stats["num_ref"] >= 100 and stats["matched"] == stats["num_ref"] and stats["max_box_diff"] <= 1e-3
    # the raw outputs: padded slots after num_dets
    wrap = get_export_module(model)
    images, sizes = wrap.example_inputs(1, (96, 160))
    boxes, scores, labels, num = run_onnx(path, (images, sizes))
    assert boxes.shape == (1, 100, 4) and scores.shape == (1, 100) and labels.dtype == np.int64
    n = int(num[0])
    assert (labels[0, :n] >= 0).all() and (labels[0, n:] == -1).all() and (np.diff(scores[0, :n]) <= 0).all()


def test_static_export_and_max_det(model, tmp_path):
    path = export_onnx(model, tmp_path / "static.onnx", image_size=(96, 128), dynamic=False, max_per_img=10)
    stats = verify_onnx(model, path, _images([(96, 120)]), batch_size=1, pad_to=(96, 128), max_per_img=10)
    assert stats["ok"], stats
    assert stats["num_ref"] == 10  # the top 10 of PyTorch's detections, all matched


def test_per_image_topk():
    image = torch.tensor([1, 0, 1, 1, 0, 2])
    sel, dest = per_image_topk(image, 3, 2)
    assert sel.tolist() == [0, 1, 2, 4, 5] and dest.tolist() == [2, 0, 3, 1, 4]


def test_unsupported_models_and_options_are_refused(model):
    with pytest.raises(ExportError, match="Linear cannot be exported.*OneStageDetector, Segmentor, TwoStageDetector"):
        get_export_module(nn.Linear(2, 2))
    with pytest.raises(ExportError, match="no option nms"):
        get_export_module(model, nms=False)


def test_detectors_do_not_import_the_export():
    import subprocess
    import sys

    code = "import sys, detkit.models, detkit.inference; print(any(m.startswith('detkit.export') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "False"
    for path in (ROOT / "detkit/models").rglob("*.py"):
        assert "detkit.export" not in path.read_text(), path


def test_compare_predictions_counts_mismatches():
    a = [
        {
            "boxes": torch.tensor([[0.0, 0, 10, 10], [20.0, 20, 30, 30]]),
            "scores": torch.tensor([0.9, 0.8]),
            "labels": torch.tensor([0, 1]),
        }
    ]
    b = [{"boxes": torch.tensor([[0.0, 0, 10, 10.0005]]), "scores": torch.tensor([0.9]), "labels": torch.tensor([0])}]
    s = compare_predictions(a, b)
    assert s["matched"] == 1 and s["num_ref"] == 2 and abs(s["max_box_diff"] - 5e-4) < 1e-5
