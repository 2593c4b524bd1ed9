"""check_parts_fit: parts that do not fit together are one ModelFitError naming the part and what feeds it; an error
inside a part (not at its input) is a PartInternalError naming the part, with the original message."""

import pytest
from torch import nn

import detkit
from detkit.config import load_config
from detkit.models.fit_check import ModelFitError, PartInternalError, check_parts_fit


def _model(*overrides):
    return detkit.build_model(load_config("faster_rcnn_r18_fpn_shapes", list(overrides)), class_names=["a", "b"])


def test_a_fitting_model_passes_and_keeps_its_mode():
    model = _model()
    model.train()
    check_parts_fit(model)
    assert model.training


@pytest.mark.parametrize(
    "override, part, detail",
    [
        ("model.neck.out_channels=64", "model.rpn_head", "model.neck gives 64 channels"),
        ("model.backbone.depth=50", "model.neck", "model.backbone gives [256, 512, 1024, 2048] channels"),
        ("model.rpn_head.anchor_sizes=[[16], [32]]", "model.rpn_head", "anchor sizes for 2 levels"),
        # the first fc after the RoI pooling is the box head's input layer
        ("model.box_head.in_channels=64", "model.box_head", "(100x6272 and 3136x1024)"),
        # only the finest lateral conv is built for other channels: the last level's convs fit
        ("model.neck.in_channels=[32, 128, 256, 512]", "model.neck", "to have 32 channels, but got 64"),
    ],
)
def test_parts_that_do_not_fit_are_named(override, part, detail):
    model = _model(override)
    with pytest.raises(ModelFitError, match=f"{part} does not fit the part before it") as info:
        check_parts_fit(model)
    assert detail in str(info.value) and f"make {part}'s in_channels" in str(info.value)


def test_a_backbone_that_cannot_run_at_the_probe_size_is_not_judged(monkeypatch):
    """A ViT takes 224x224 only: the probe at 64x64 fails inside the backbone, which says nothing of the fit."""
    model = _model()

    def fixed_size(x):
        assert x.shape[-2:] == (224, 224), f"Input height ({x.shape[-2]}) doesn't match model (224)"

    monkeypatch.setattr(model.backbone, "forward", fixed_size)
    check_parts_fit(model)  # no ModelFitError, no AssertionError


def test_a_misfit_is_found_on_the_fused_inference_path_too_and_the_flags_are_restored():
    """The fused paths call oneDNN / F.conv2d with the layers' weights, past their hooks (and with a less clear
    message): the check runs the plain modules."""
    model = _model("model.backbone.depth=50").optimize_for_inference(True)
    with pytest.raises(ModelFitError, match="model.neck does not fit the part before it") as info:
        check_parts_fit(model)
    assert "to have 512 channels, but got 2048 channels" in str(info.value)
    assert model.neck.fused_inference and model.rpn_head.fused_inference and model.backbone.fused_inference


def test_an_error_inside_a_head_after_its_input_layers_is_internal():
    """A shape error deep in the box head (its classifier built wrong) is no misfit of the parts."""
    model = _model()
    model.box_head.cls_score = nn.Linear(63, model.num_classes + 1)
    with pytest.raises(PartInternalError) as info:
        check_parts_fit(model)
    msg = str(info.value)
    assert "model.box_head failed on a blank 64x64 image inside its forward" in msg
    assert "does not fit" not in msg and "RuntimeError: mat1 and mat2 shapes cannot be multiplied (100x1024" in msg
    assert isinstance(info.value.__cause__, RuntimeError)
    assert isinstance(info.value, ValueError) and not isinstance(info.value, ModelFitError)  # tools: one line, exit 2


def test_an_error_in_a_head_post_processing_is_internal():
    model = _model()

    def broken_predict(*args, **kwargs):
        raise IndexError("index 7 is out of bounds for dimension 0 with size 5")

    model.box_head.predict = broken_predict
    with pytest.raises(PartInternalError) as info:
        check_parts_fit(model)
    assert str(info.value).startswith("model.box_head failed on a blank 64x64 image after its forward")
    assert str(info.value).endswith("IndexError: index 7 is out of bounds for dimension 0 with size 5")
