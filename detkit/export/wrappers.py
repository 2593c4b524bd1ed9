"""The table from model type to export wrapper: detectors know nothing of the export, the export knows them.

A new model type becomes exportable with ``register_export_wrapper(ModelClass, WrapperClass)``, where the
wrapper follows ``detkit.export.common`` (tensor-only ``forward(images, image_sizes)``, ``options``,
``input_names``, ``output_names``, ``dynamic_axes``, ``example_inputs``, ``inputs_from_batch``,
``outputs_to_predictions``); ``export_onnx``, ``verify_onnx`` and ``tools/export.py`` need no change.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from detkit.export.classifier import ClassifierExport
from detkit.export.common import ExportError
from detkit.export.one_stage import OneStageExport
from detkit.export.semantic import SemanticExport
from detkit.export.two_stage import TwoStageExport
from detkit.models.detectors.classifier import Classifier
from detkit.models.detectors.one_stage import OneStageDetector
from detkit.models.detectors.segmentor import Segmentor
from detkit.models.detectors.two_stage import TwoStageDetector

EXPORT_WRAPPERS: dict[type, type] = {
    TwoStageDetector: TwoStageExport,
    OneStageDetector: OneStageExport,
    Classifier: ClassifierExport,
    Segmentor: SemanticExport,
}


def register_export_wrapper(model_type: type, wrapper: type) -> None:
    """Export models of ``model_type`` (and its subclasses) through ``wrapper(model, **options)``."""
    EXPORT_WRAPPERS[model_type] = wrapper


def is_exportable(model: nn.Module) -> bool:
    """True when the default export works: a wrapper is registered for ``type(model)`` or a base class of it, and
    the graph can keep the image size dynamic (a wrapper's ``dynamic_unsupported()``: a segmentor's sliding
    windows or adaptive pooling need ``--static``)."""
    wrapper = next((EXPORT_WRAPPERS[cls] for cls in type(model).__mro__ if cls in EXPORT_WRAPPERS), None)
    if wrapper is None:
        return False
    return not hasattr(wrapper, "dynamic_unsupported") or wrapper(model).dynamic_unsupported() is None


def export_wrapper_type(model: nn.Module) -> type:
    """The wrapper class registered for ``type(model)`` or its nearest base class."""
    for cls in type(model).__mro__:
        if cls in EXPORT_WRAPPERS:
            return EXPORT_WRAPPERS[cls]
    names = ", ".join(sorted(t.__name__ for t in EXPORT_WRAPPERS))
    raise ExportError(f"{type(model).__name__} cannot be exported to ONNX; exportable model types: {names}")


def get_export_module(model: nn.Module, **options: Any) -> nn.Module:
    """The model's tensor-only export wrapper (a copy of the model), in eval mode.

    Raises:
        ExportError: the model type has no wrapper, or an option is not one of the wrapper's ``options``.
    """
    wrapper = export_wrapper_type(model)
    unknown = sorted(set(options) - set(wrapper.options))
    if unknown:
        raise ExportError(
            f"{type(model).__name__} export has no option {', '.join(unknown)} (its options: "
            f"{', '.join(wrapper.options) or 'none'}); nms=False (--no-nms) is for YOLO models, max_per_img "
            "(--max-per-img) for detectors"
        )
    return wrapper(model, **options).eval()
