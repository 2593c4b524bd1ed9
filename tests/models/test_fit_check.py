"""check_parts_fit: parts that do not fit together are one ModelFitError naming the part and what feeds it."""

import pytest

import detkit
from detkit.config import load_config
from detkit.models.fit_check import ModelFitError, check_parts_fit


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
