"""ONNX export of semantic segmentors: per-pixel labels and logits at the input size, verified against predict."""

import json

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from detkit.data.collate import collate
from detkit.export import ExportError, export_onnx, get_export_module, run_onnx, verify_onnx
from detkit.export.verify_semantic import compare_semantic_predictions, semantic_passes

pytest.importorskip("onnxruntime")

MIXED = [(100, 150), (200, 120), (64, 64), (90, 300), (128, 128)]


def test_wrapper_equals_predict(semantic, shapes):
    batch = collate([{"image": im, "image_id": i} for i, im in enumerate(shapes([(100, 128), (128, 96), (64, 64)]))])
    wrap = get_export_module(semantic)
    inputs = wrap.inputs_from_batch(batch)
    with torch.no_grad():
        ref = semantic.predict(batch)
        got = wrap.outputs_to_predictions(wrap(*inputs), inputs)
    for r, g, (h, w) in zip(ref, got, batch["image_sizes"]):
        assert g["sem_seg"].shape == (h, w) and g["logits"].shape == (3, h, w)
        assert torch.equal(r["sem_seg"], g["sem_seg"])
        assert len(r["sem_seg"].unique()) >= 2  # a real label map, not one class everywhere
    assert semantic.training is False and wrap.model is not semantic


def _traced_resize(x, size, align_corners=False):
    """``seg_common.resize`` as it should be for a dynamic graph (proposed there): traced sizes kept as they are."""
    if not torch.jit.is_tracing():
        size = tuple(int(s) for s in size)
        if tuple(x.shape[-2:]) == size:
            return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=align_corners)


@pytest.fixture
def traced_resize(monkeypatch):
    """The decode heads resize with :func:`_traced_resize` (their ``resize`` turns traced sizes into ints)."""
    from detkit.models.heads import seg_common, seg_deeplab, seg_fcn, seg_fpn, seg_uper

    for module in (seg_common, seg_deeplab, seg_fcn, seg_fpn, seg_uper):
        monkeypatch.setattr(module, "resize", _traced_resize)


def test_dynamic_export_is_exact_or_refused(semantic, shapes, tmp_path):
    """Never a graph that computes at the traced size only: a dynamic export verifies at other sizes, or is
    refused (while a decode head's resize fixes the traced sizes) with the fix: --static."""
    try:
        path = export_onnx(semantic, tmp_path / "semfpn.onnx", image_size=(128, 128), batch_size=2)
    except ExportError as e:
        assert "fixed numbers" in str(e) and "--static" in str(e)
        assert not (tmp_path / "semfpn.onnx").exists()
        return
    assert verify_onnx(semantic, path, shapes(MIXED), batch_size=3)["ok"]


def test_dynamic_export_verified_at_other_sizes(semantic, shapes, tmp_path, traced_resize):
    path = export_onnx(semantic, tmp_path / "semfpn.onnx", image_size=(128, 128), batch_size=2)
    graph = onnx.load(str(path)).graph
    declared = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in graph.output}
    assert declared == {"labels": ["batch", "height", "width"], "logits": ["batch", 3, "height", "width"]}
    # batches of 3 mixed sizes (resized to short side 160 by the test pipeline) against a graph traced at 2 x 128
    stats = verify_onnx(semantic, path, shapes(MIXED), batch_size=3)
    assert stats["ok"], stats
    assert stats["images"] == 5 and stats["pixels"] > 5 * 160 * 160 and stats["label_agreement"] > 0.999
    assert stats["logits_over_tol"] == 0 and stats["max_logit_diff"] < 5e-3  # logits up to ~40: relative 1e-4
    wrap = get_export_module(semantic)
    image = torch.from_numpy(shapes([(96, 160)], seed=9)[0]).permute(2, 0, 1)[None].contiguous()
    sizes = torch.tensor([[96, 160]])
    labels, logits = run_onnx(path, (image, sizes))
    assert labels.shape == (1, 96, 160) and labels.dtype == np.int64
    assert logits.shape == (1, 3, 96, 160) and logits.dtype == np.float32
    with torch.no_grad():
        ref_labels, ref_logits = wrap(image, sizes)
    np.testing.assert_allclose(logits, ref_logits.numpy(), atol=1e-4)
    assert (labels == ref_labels.numpy()).mean() > 0.999 and (labels == logits.argmax(1)).all()


def test_semantic_metadata(semantic, tmp_path):
    path = export_onnx(semantic, tmp_path / "semfpn.onnx", image_size=(64, 64), dynamic=False)
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["task"] == "semantic" and meta["stride"] == "32"
    assert json.loads(meta["class_names"]) == ["background", "circle", "rectangle"]
    pre = json.loads(meta["preprocess"])
    assert pre["resize"] == "resize-shortest-edge" and pre["short_side"] == [160] and pre["normalize"]["in_graph"]
    assert "input_size" not in meta and "score_thr" not in meta and "max_per_img" not in meta


def test_static_export(semantic, shapes, tmp_path):
    path = export_onnx(semantic, tmp_path / "static.onnx", image_size=(160, 224), dynamic=False)
    outputs = onnx.load(str(path)).graph.output
    assert [[d.dim_value for d in o.type.tensor_type.shape.dim] for o in outputs] == [[1, 160, 224], [1, 3, 160, 224]]
    stats = verify_onnx(semantic, path, shapes([(160, 200), (128, 128)]), batch_size=1, pad_to=(160, 224))
    assert stats["ok"] and stats["images"] == 2, stats


def test_slide_mode_exports_with_a_static_size_only(make_semfpn, shapes, tmp_path):
    slide = ["model.test_mode=slide", "model.crop_size=[64,64]", "model.stride=[64,64]"]
    model = make_semfpn([*slide, "data.val.pipeline=[{type: ResizeShortestEdge, short_sizes: [96], max_size: 128}]"])
    with pytest.raises(ExportError, match=r"slide.*window grid.*--static"):
        export_onnx(model, tmp_path / "slide.onnx", image_size=(128, 128))
    assert not (tmp_path / "slide.onnx").exists()
    path = export_onnx(model, tmp_path / "slide.onnx", image_size=(128, 128), dynamic=False)  # 2 x 2 windows
    stats = verify_onnx(model, path, shapes([(96, 96), (160, 120)]), batch_size=1, pad_to=(128, 128))
    assert stats["ok"] and stats["label_agreement"] > 0.999, stats


@pytest.mark.parametrize("fault", ["labels-shifted", "logits-off"])
def test_verify_fails_a_wrong_export(semantic, shapes, tmp_path, monkeypatch, fault):
    """A label map one pixel off (a padding or resize fault) or logits 1e-2 off fail; the real outputs pass."""
    from detkit.export import verify

    path = export_onnx(semantic, tmp_path / "semfpn.onnx", image_size=(160, 288), dynamic=False)
    real_run = verify.run_onnx

    def faulty(*args):
        labels, logits = (np.array(o) for o in real_run(*args))
        if fault == "labels-shifted":
            labels = np.roll(labels, 1, axis=2)
        else:
            logits[:, 1] += 1e-2
        return [labels, logits]

    images, static = shapes([(128, 128), (96, 160)]), dict(batch_size=1, pad_to=(160, 288))  # 160x160, 160x288
    assert verify.verify_onnx(semantic, path, images, **static)["ok"]
    monkeypatch.setattr(verify, "run_onnx", faulty)
    stats = verify.verify_onnx(semantic, path, images, **static)
    assert not stats["ok"], stats
    if fault == "logits-off":
        assert stats["logits_over_tol"] > 0 and stats["max_logit_diff"] == pytest.approx(1e-2, rel=0.05)
    else:
        assert stats["label_agreement"] < 0.999 and stats["logits_over_tol"] == 0


def test_pixels_at_tied_logits_are_borderline():
    logits = torch.tensor([[[2.0, 1.0, 0.5]], [[2.0003, 0.0, 0.5]], [[0.0, 0.0, 3.0]]])  # [C=3,1,3]
    ref = [{"sem_seg": torch.tensor([[1, 0, 2]]), "logits": logits}]
    tied = [{"sem_seg": torch.tensor([[0, 0, 2]]), "logits": logits}]  # classes 0 and 1 tie within 1e-3 at pixel 0
    stats = compare_semantic_predictions(ref, tied, atol=1e-3, rtol=0.0)
    assert stats["labels_equal"] == 2 and stats["borderline"] == 1 and semantic_passes(stats)
    wrong = [{"sem_seg": torch.tensor([[1, 1, 2]]), "logits": logits}]  # pixel 1: class 0 leads by 1.0
    stats = compare_semantic_predictions(ref, wrong, atol=1e-3, rtol=0.0)
    assert stats["borderline"] == 0 and not semantic_passes(stats)
    other_size = [{"sem_seg": torch.tensor([[1, 0]]), "logits": logits[:, :, :2]}]
    stats = compare_semantic_predictions(ref, other_size)
    assert stats["shape_mismatch"] == 1 and not semantic_passes(stats)


def test_the_verdict_line_of_a_semantic_export():
    from detkit.cli.export import verify_summary

    stats = dict(images=4, pixels=1000, labels_equal=998, borderline=2, label_agreement=0.998, max_logit_diff=3e-6)
    line = verify_summary({**stats, "logits_over_tol": 0, "shape_mismatch": 0, "ok": True})
    assert line == (
        "verify on 4 images: labels equal on 998 of 1000 pixels (99.8000%) (2 more at tied logits), "
        "max logit diff 3.00e-06: OK"
    )


def test_upernet_exports_at_a_size_its_pyramid_pooling_divides(make_semfpn, shapes, tmp_path):
    """UPerHead's adaptive pools (1, 2, 3, 6): no dynamic graph; a static one where the stride-32 map divides by 6."""
    model = make_semfpn(["model.neck=null", "model.decode_head={type: UPerHead, channels: 16}"])
    with pytest.raises(ExportError, match=r"adaptive average pooling to \[2, 3, 6\].*--static"):
        export_onnx(model, tmp_path / "uper.onnx", image_size=(192, 192))
    with pytest.raises(ExportError, match=r"at 160x160: .*pools a 5x5 map: .*sides multiple of 192"):
        export_onnx(model, tmp_path / "uper.onnx", image_size=(160, 160), dynamic=False)
    assert not list(tmp_path.iterdir())  # no file, no temporary left
    path = export_onnx(model, tmp_path / "uper.onnx", image_size=(192, 192), dynamic=False)
    stats = verify_onnx(model, path, shapes([(160, 160), (128, 150)]), batch_size=1, pad_to=(192, 192))
    assert stats["ok"] and stats["label_agreement"] > 0.999, stats


def test_is_exportable_means_the_default_dynamic_export_works(semantic, make_semfpn, yolo, traced_resize):
    """The training summary prints `detkit export ... --verify` (dynamic) only for models where it works."""
    from torch import nn

    from detkit.export.wrappers import is_exportable

    assert is_exportable(yolo) and is_exportable(semantic) and not is_exportable(nn.Linear(2, 2))
    slide = make_semfpn(["model.test_mode=slide", "model.crop_size=[64,64]"])
    uper = make_semfpn(["model.neck=null", "model.decode_head={type: UPerHead, channels: 16}"])
    assert not is_exportable(slide) and not is_exportable(uper)
    assert semantic.training is False and not any(p.grad is not None for p in semantic.parameters())


def test_detector_options_are_refused(semantic):
    with pytest.raises(ExportError, match=r"Segmentor export has no option max_per_img \(its options: none\)"):
        get_export_module(semantic, max_per_img=5)
