"""Any timm model as a multi-scale backbone (timm is optional: ``pip install detkit[timm]``)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from detkit.models.backbones.init_weights import InitReport, init_backbone
from detkit.registry import BACKBONES
from detkit.utils.checkpoint import check_checkpoint_file, file_kind


@BACKBONES.register
class TimmBackbone(nn.Module):
    """Wrap ``timm.create_model(model_name, features_only=True)``; weights only from a local file.

    Args:
        model_name: a timm model name (``timm.list_models()``), e.g. ``resnet50``, ``convnext_tiny``.
        pretrained: ask for pretrained weights; nothing is ever downloaded, so it needs ``checkpoint_path``.
        checkpoint_path: local ``.pth`` / ``.safetensors`` file of the timm model's weights, loaded (whenever
            given) through timm's pretrained loader, which drops the classifier for the feature model.
        out_indices: feature levels to return (timm's ``feature_info`` indices).
        init_checkpoint: local path of a detkit checkpoint of any model with the same ``TimmBackbone`` (e.g. a
            classifier's ``best.pth``: its ``backbone.*`` tensors, the head dropped), loaded after
            ``checkpoint_path``; what was loaded, dropped, missing and unexpected is logged (``init_report``).
        **kwargs: passed on to ``timm.create_model`` (e.g. ``drop_path_rate``).

    Attributes:
        out_channels (list[int]), strides (list[int]): from timm's ``feature_info``.

    State dict: the timm feature model under ``body.`` (``body.<timm module names>``).
    ``forward(x: Tensor[B,3,H,W]) -> list[Tensor]`` increasing stride.
    """

    def __init__(
        self,
        model_name: str,
        pretrained: bool = False,
        checkpoint_path: str | None = None,
        out_indices: Sequence[int] = (1, 2, 3, 4),
        init_checkpoint: str | None = None,
        **kwargs: Any,
    ):
        super().__init__()
        try:
            import timm
        except ImportError as e:
            raise ImportError(
                "TimmBackbone needs the optional package timm: pip install detkit[timm] (or pip install timm)"
            ) from e
        _check_model_name(timm, model_name)
        if pretrained and not checkpoint_path:
            raise ValueError(
                f"TimmBackbone('{model_name}'): pretrained=True needs checkpoint_path (a local "
                "weights file); detkit never downloads weights"
            )
        if checkpoint_path and file_kind(checkpoint_path) != "safetensors":  # timm reads .pth and .safetensors
            check_checkpoint_file(checkpoint_path, what="model.backbone.checkpoint_path")
        if checkpoint_path:
            # 'file' overrides every remote source; source='' keeps timm off the Hugging Face hub
            kwargs["pretrained_cfg_overlay"] = dict(file=checkpoint_path, source="", url="", hf_hub_id="")
        out_indices = tuple(out_indices)
        try:
            self.body = timm.create_model(
                model_name, pretrained=bool(checkpoint_path), features_only=True, out_indices=out_indices, **kwargs
            )
        except (IndexError, AssertionError):  # timm's answers to a feature index out of range
            _check_out_indices(timm, model_name, out_indices, kwargs)
            raise
        self.out_channels = list(self.body.feature_info.channels())
        self.strides = list(self.body.feature_info.reduction())
        self.init_report: InitReport | None = None
        if init_checkpoint:
            self.init_report = init_backbone(self, init_checkpoint)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return the feature maps of ``out_indices``, increasing stride."""
        return list(self.body(x))


def _check_model_name(timm: Any, model_name: Any) -> None:
    """Raise a ValueError naming the nearest timm models when ``model_name`` is no timm model."""
    if not isinstance(model_name, str) or not model_name:
        raise ValueError(f"model.backbone.model_name must be a timm model name (a string), got {model_name!r}")
    if ":" in model_name or timm.is_model(model_name):  # 'hf-hub:' / 'local-dir:' names: timm checks them
        return
    near = difflib.get_close_matches(model_name.lower(), timm.list_models(), n=5, cutoff=0.6)
    hint = f"nearest timm models: {', '.join(near)}" if near else "no timm model has a similar name"
    raise ValueError(
        f"model.backbone.model_name: unknown timm model '{model_name}' ({hint}); "
        "set it to a name from timm.list_models()"
    )


def _check_out_indices(timm: Any, model_name: str, out_indices: tuple, kwargs: dict) -> None:
    """Raise a ValueError giving the valid range when an ``out_indices`` entry exceeds the model's levels."""
    kwargs = {k: v for k, v in kwargs.items() if k != "pretrained_cfg_overlay"}
    try:
        levels = len(timm.create_model(model_name, pretrained=False, features_only=True, **kwargs).feature_info)
    except Exception:  # noqa: BLE001  (the caller re-raises timm's own error)
        return
    bad = [i for i in out_indices if not -levels <= int(i) < levels]
    if bad:
        raise ValueError(
            f"model.backbone.out_indices {list(out_indices)}: {bad} out of range for timm model "
            f"'{model_name}', which has {levels} feature levels (valid indices 0 to {levels - 1})"
        )
