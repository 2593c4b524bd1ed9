"""`detkit export` never overwrites what is not an earlier export, sizes a static graph as the test pipeline,
refuses an opset the model cannot use, and names the config (not its contents) in a class-count mismatch."""

import onnx
import pytest
import torch

TINY_YOLO = {  # the conftest's yolo model, as a config builds it
    "backbone": {"type": "CSPDarknet", "depth_multiple": 0.33, "width_multiple": 0.125},
    "neck": {"type": "PAFPN"},
}

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def yolo_run(yolo, tmp_path_factory):
    """A tiny YOLO run folder: checkpoint, config.yaml, log, and a config whose data.val is an image folder."""
    run = tmp_path_factory.mktemp("run")
    data = run / "data" / "val"
    data.mkdir(parents=True)
    (data / "000001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 64)
    cfg = {"model": {"type": "OneStageDetector", **TINY_YOLO, "head": {"type": "YOLOHead"}, "num_classes": 3}}
    cfg["data"] = {
        "val": {
            "type": "CocoDataset",
            **yolo.cfg["data"]["val"],
            "img_dir": str(data),
            "ann_file": str(run / "ann.json"),
        }
    }
    (run / "config.yaml").write_text("model: {}\n")
    (run / "log.txt").write_text("epoch 1\n")
    torch.save({"model": yolo.state_dict(), "meta": {"config": cfg, "class_names": ["a", "b", "c"]}}, run / "best.pth")
    return run


@pytest.mark.parametrize("target", ["config.yaml", "log.txt", "data/val/000001.png", "model.txt"])
def test_out_never_overwrites_non_onnx(tool_in_process, yolo_run, target):
    out = yolo_run / target
    before = out.read_bytes() if out.exists() else None
    res = tool_in_process("export", ["-", yolo_run / "best.pth", "--out", out])
    assert res.returncode == 2, res
    assert len(res.stderr.strip().splitlines()) == 1 and target.split("/")[-1] in res.stderr, res.stderr
    assert (out.read_bytes() if out.exists() else None) == before


def test_earlier_export_replaced_and_static_size_from_pipeline(tool_in_process, yolo_run):
    out = yolo_run / "model.onnx"
    for _ in range(2):  # the second run replaces the first export
        res = tool_in_process("export", ["-", yolo_run / "best.pth", "--out", out, "--static"])
        assert res.returncode == 0, res
    proto = onnx.load(str(out))
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 128, 128]  # the config's LetterBox size, not a default 320
    res = tool_in_process("export", ["-", yolo_run / "best.pth", "--out", out, "--static", "--image-size", "96"])
    assert res.returncode == 0 and "WARNING" in res.stderr and "128,128" in res.stderr, res


def test_opset_11_with_masks_refused(yolo_seg, tmp_path):
    from detkit.export import ExportError, export_onnx

    with pytest.raises(ExportError, match="opset 12"):
        export_onnx(yolo_seg, tmp_path / "s.onnx", (64, 64), opset=11)


def test_unsupported_operator_is_one_line(monkeypatch, yolo, tmp_path):
    from torch.onnx.errors import UnsupportedOperatorError

    from detkit.export import ExportError, export_onnx, onnx

    def fail(*a, **k):
        raise UnsupportedOperatorError("aten::einsum", 11, 12)

    monkeypatch.setattr(onnx, "_trace", fail)
    with pytest.raises(ExportError, match="aten::einsum.*higher --opset"):
        export_onnx(yolo, tmp_path / "y.onnx", (64, 64), opset=11)


def test_class_count_mismatch_names_config(tool_in_process, yolo_run, tmp_path):
    res = tool_in_process("export", ["yolo_n_coco", yolo_run / "best.pth", "--out", tmp_path / "x.onnx"])
    assert res.returncode == 2 and "yolo_n_coco sets model.num_classes" in res.stderr and "{" not in res.stderr, (
        res.stderr
    )
