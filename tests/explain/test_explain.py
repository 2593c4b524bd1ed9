"""detkit.explain on tiny random models of each type: heatmaps of the image's size in 0..1, one per explained
detection / top class / class present; targeted maps differ per detection; layers by name; the model untouched."""

import numpy as np
import pytest
import torch

import detkit
from detkit.explain import ExplainError, layer_names
from detkit.models.fuse import set_fused_inference


def _check_maps(result, image, k):
    heat = result["heatmaps"]
    assert heat.dtype == torch.float32 and tuple(heat.shape) == (k, *image.shape[:2])
    assert float(heat.min()) >= 0.0 and float(heat.max()) <= 1.0
    assert all(float(m.max()) > 0.99 for m in heat)  # each map spans 0..1 over the image (none flat)
    assert len(result["heatmap_labels"]) == k


@pytest.mark.parametrize("method", ["eigencam", "gradcam", "hirescam"])
@pytest.mark.parametrize("name", ["faster_rcnn", "yolo"])
def test_detector_maps(request, name, method, make_image):
    model = request.getfixturevalue(name)
    image = make_image(1, (90, 150))  # another aspect than the network input: letterbox / resize undone
    result = detkit.explain(model, image, method=method, score_thr=0.0, max_dets=3)
    plain = detkit.predict(model, image, score_thr=0.0)
    assert torch.equal(result["boxes"], plain["boxes"])  # the predictions of predict
    _check_maps(result, image, 3)
    best = torch.argsort(plain["scores"], descending=True, stable=True)[:3]
    assert result["heatmap_dets"].tolist() == best.tolist()
    assert result["heatmap_labels"].tolist() == plain["labels"][best].tolist()
    assert result["target_layer"] == "neck"  # the head reads every level: all merged


def test_segmentor_and_classifier_maps(segmentor, classifier, image):
    seg = detkit.explain(segmentor, image, method="gradcam")
    present = torch.unique(seg["sem_seg"])
    _check_maps(seg, image, len(present))
    assert sorted(seg["heatmap_labels"].tolist()) == present.tolist()
    assert seg["target_layer"] == "neck"

    for method in ("eigencam", "gradcam++"):
        cls = detkit.explain(classifier, image, method=method, max_dets=2)
        _check_maps(cls, image, 2)
        assert cls["heatmap_labels"].tolist() == cls["labels"][:2].tolist()  # the top classes
        # the map the head pools (backbone.layer4) is 2x2 at 64 px: the last layer with a 4x4 map instead
        assert cls["target_layer"] == "backbone.layer3"


def test_classifier_default_layer_follows_the_input_size(classifier, image):
    """At 32 px backbone.layer4 is 1x1 (every heatmap flat): the default is the last layer at least 4x4; a
    1x1 layer asked for by name warns and names the layer to use."""
    import copy
    import warnings

    from detkit.config import load_config

    small = copy.deepcopy(classifier)
    small.cfg = load_config("resnet18_shapes", ["data.val.pipeline=[{type: Resize, height: 32, width: 32}]"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = detkit.explain(small, image, method="gradcam", max_dets=2)
    assert result["target_layer"] == "backbone.layer2"  # layer3 is 2x2 at 32 px
    _check_maps(result, image, 2)
    with pytest.warns(UserWarning, match="1x1") as caught:
        detkit.explain(small, image, method="gradcam", target_layer="backbone.layer4", max_dets=1)
    assert "--target-layer backbone.layer2" in str(caught[0].message)


@pytest.mark.parametrize("method", ["gradcam", "hirescam"])
def test_targeted_maps_differ_per_detection(faster_rcnn, yolo, image, method):
    result = detkit.explain(faster_rcnn, image, method=method, max_dets=4)
    heat = result["heatmaps"].numpy()
    boxes = result["boxes"][result["heatmap_dets"]]
    assert len(heat) == 4 and torch.unique(boxes, dim=0).shape[0] == 4
    for j in range(1, 4):
        assert np.abs(heat[0] - heat[j]).max() > 0.1  # another detection, another map
    eigen = detkit.explain(yolo, image, method="eigencam", score_thr=0.0, max_dets=4)["heatmaps"]
    assert torch.equal(eigen[0], eigen[3])  # gradient-free: one map for the image


def test_layer_by_name_and_unknown_layer(faster_rcnn, image):
    result = detkit.explain(faster_rcnn, image, method="hirescam", target_layer="backbone.layer3", max_dets=2)
    assert result["target_layer"] == "backbone.layer3" and result["heatmaps"].shape[0] == 2
    names = layer_names(faster_rcnn)
    assert {"backbone", "neck", "backbone.layer4", "neck.output_convs.1"} <= set(names)
    assert not any(n.startswith(("box_head", "mask_head")) for n in names)  # RoI layers see regions, not images

    with pytest.raises(
        ExplainError, match=r"'neck.output_conv.1' is not a layer.*nearest first: neck\.output_convs\.1,"
    ):
        detkit.explain(faster_rcnn, image, target_layer="neck.output_conv.1")
    with pytest.raises(ExplainError, match=r"'box_head.fcs.0' works on pooled regions .*valid layers"):
        detkit.explain(faster_rcnn, image, target_layer="box_head.fcs.0")
    with pytest.raises(ExplainError, match="unknown method 'scorecam'; choose one of eigencam, gradcam"):
        detkit.explain(faster_rcnn, image, method="scorecam")


def test_model_left_as_it_was(faster_rcnn, image):
    """Flags, gradients, requires_grad and mode are restored; no gradient lands in the parameters."""
    set_fused_inference(faster_rcnn, True)
    frozen = next(faster_rcnn.backbone.parameters())
    frozen.requires_grad_(False)
    before = {k: v.clone() for k, v in faster_rcnn.state_dict().items()}
    try:
        detkit.explain(faster_rcnn, image, method="gradcam", max_dets=2)
        assert faster_rcnn.backbone.fused_inference and faster_rcnn.neck.fused_inference
        assert not frozen.requires_grad and not faster_rcnn.training
        assert all(p.grad is None for p in faster_rcnn.parameters())
        assert all(torch.equal(before[k], v) for k, v in faster_rcnn.state_dict().items())
    finally:
        set_fused_inference(faster_rcnn, False)
        frozen.requires_grad_(True)


def test_no_detection_gives_no_map(yolo, image):
    result = detkit.explain(yolo, image, method="gradcam", score_thr=1.0)
    assert len(result["boxes"]) == 0 and tuple(result["heatmaps"].shape) == (0, *image.shape[:2])


def _flat_warning(model, image, method, target, layer=None) -> str:
    """The one warning of ``method``'s maps of ``target`` at ``layer`` (None: the default; all must be flat)."""
    from detkit.explain.session import cam_session

    with cam_session(model, image, layer) as session, pytest.warns(UserWarning, match="are flat") as caught:
        maps = session.heatmaps(method, [target])
    assert all(float(m.max()) <= float(m.min()) for m in maps)
    return str(caught[0].message)


def test_flat_maps_say_whether_the_gradients_reach_the_layer(classifier, image):
    """A classifier whose class 0 is minus the mean of backbone.layer4 (ReLU outputs, >= 0): the gradient reaches
    the layer, but Grad-CAM's map (activations weighted by the gradient) is <= 0 and its ReLU makes it 0; with
    class 0's weights at zero no gradient reaches the layer at all."""
    import copy

    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = copy.deepcopy(classifier)
    with torch.no_grad():
        model.head.fc.weight[0] = -1.0
    for method in ("gradcam", "gradcam++"):
        text = _flat_warning(model, image, method, ClassifierOutputTarget(0), "backbone.layer4")
        assert "layer 'backbone.layer4'" in text and "gradients reach it" in text, text
        assert "ReLU" in text and "try --method hirescam or eigencam" in text, text
        assert "no gradient" not in text, text
    text = _flat_warning(model, image, "hirescam", ClassifierOutputTarget(0), "backbone.layer4")
    assert "gradients reach it" in text and "try --method eigencam" in text, text

    with torch.no_grad():
        model.head.fc.weight[0] = 0.0
    text = _flat_warning(model, image, "gradcam", ClassifierOutputTarget(0), "backbone.layer4")
    assert "no gradient of the targets reaches it" in text and "choose a layer they read" in text, text
