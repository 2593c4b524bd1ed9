"""Each exported graph declares its outputs' true shapes: a name for every axis that follows the input (batch,
height, width, anchors), the fixed size of every other dim; checked against onnxruntime at another batch and size."""

import onnx
import pytest
import torch
from torch import nn

from detkit.export import ExportError, export_onnx, get_export_module, run_onnx
from detkit.export.common import ExportWrapper
from detkit.export.shapes import declared_output_shapes

pytest.importorskip("onnxruntime")

RCNN = {"boxes": ["batch", 100, 4], "scores": ["batch", 100], "labels": ["batch", 100], "num_dets": ["batch"]}


def _yolo(k):
    return {"boxes": ["batch", k, 4], "scores": ["batch", k], "labels": ["batch", k], "num_dets": ["batch"]}


RAW = {"boxes": ["batch", "anchors", 4], "scores": ["batch", "anchors", 3]}
CASES = {  # fixture, export options, declared output shapes (K: the model's max_per_img)
    "faster_rcnn": ("faster_rcnn", {}, RCNN),
    "mask_rcnn": ("mask_rcnn", {}, {**RCNN, "masks": ["batch", 100, 28, 28]}),  # was [batch, 100, batch, ?]
    "yolo": ("yolo", {}, _yolo(300)),
    "yolo-no-nms": ("yolo", {"nms": False}, RAW),
    "yolo_seg": ("yolo_seg", {}, {**_yolo(300), "masks": ["batch", 300, "height", "width"]}),
    "yolo_seg-no-nms": (
        "yolo_seg",
        {"nms": False},
        {**RAW, "coefs": ["batch", "anchors", 8], "protos": ["batch", 8, "proto_height", "proto_width"]},
    ),
}


def _declared(path) -> dict[str, list]:
    graph = onnx.load(str(path)).graph
    return {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in graph.output}


def _check_actual(declared: dict, outputs: list, names: list, sizes: dict) -> None:
    """Every output has its declared rank, fixed sizes and named sizes (one value per name across outputs)."""
    for name, out in zip(names, outputs):
        dims = declared[name]
        assert len(out.shape) == len(dims), (name, out.shape, dims)
        for size, dim in zip(out.shape, dims):
            if isinstance(dim, str):
                assert sizes.setdefault(dim, size) == size, (name, dim, out.shape, sizes)
            else:
                assert size == dim, (name, out.shape, dims)


@pytest.mark.parametrize("case", list(CASES))
def test_declared_output_shapes_match_the_outputs(case, request, tmp_path):
    fixture, options, expected = CASES[case]
    model = request.getfixturevalue(fixture)
    path = export_onnx(model, tmp_path / "m.onnx", image_size=(128, 128), batch_size=2, **options)
    declared = _declared(path)
    assert declared == expected
    module = get_export_module(model, **options)
    outputs = run_onnx(path, module.example_inputs(3, (96, 160)))  # another batch and size than traced
    _check_actual(declared, outputs, module.output_names, {"batch": 3, "height": 96, "width": 160})


def test_static_graph_declares_every_size(mask_rcnn, tmp_path):
    path = export_onnx(mask_rcnn, tmp_path / "m.onnx", image_size=(96, 128), dynamic=False)
    declared = _declared(path)  # torch declared num_dets [ReduceSumnum_dets_dim_0], masks [1, 100, ?, ?]
    assert declared == {**{k: [1, *v[1:]] for k, v in RCNN.items()}, "masks": [1, 100, 28, 28]}
    outputs = run_onnx(path, get_export_module(mask_rcnn).example_inputs(1, (96, 128)))
    _check_actual(declared, outputs, list(declared), {})


class _MeanMap(nn.Module):
    """A wrapper-like module: ``maps`` [B,1,H,W] (the image's channel mean) with the given dynamic axes."""

    output_names, size_divisor = ["maps"], 32
    example_inputs = ExportWrapper.example_inputs

    def __init__(self, axes: dict):
        super().__init__()
        self.dynamic_axes = {"maps": axes}

    def forward(self, images, image_sizes):
        return (images.float().mean(1, keepdim=True),)


def test_a_wrapper_with_wrong_dynamic_axes_is_refused():
    example = _MeanMap({}).example_inputs(2, (64, 64))
    named = {0: "batch", 2: "height", 3: "width"}
    assert declared_output_shapes(_MeanMap(named), example, True) == {"maps": ["batch", 1, "height", "width"]}
    assert declared_output_shapes(_MeanMap({}), example, False) == {"maps": [2, 1, 64, 64]}
    with pytest.raises(ExportError, match=r"dim 2 of output 'maps' changes with the input \(64 -> 96\)"):
        declared_output_shapes(_MeanMap({0: "batch"}), example, True)
    with pytest.raises(ExportError, match=r"names dim \[4\] of output 'maps', which has 4 dims"):
        declared_output_shapes(_MeanMap({**named, 4: "depth"}), example, True)
    with torch.no_grad():
        assert _MeanMap(named)(*example)[0].shape == (2, 1, 64, 64)
