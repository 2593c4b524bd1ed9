"""The library API (re-exports only): ``init_model``, ``predict``, ``load_checkpoint``, ``load_config``, ``build_model``."""

from detkit.config import load_config  # noqa: F401
from detkit.inference.api import init_model, predict  # noqa: F401
from detkit.inference.runner import ImageInput, build_test_pipeline, to_rgb_array  # noqa: F401
from detkit.models.build import build_model  # noqa: F401
from detkit.utils.checkpoint import load_checkpoint  # noqa: F401

__all__ = [
    "ImageInput",
    "build_model",
    "build_test_pipeline",
    "init_model",
    "load_checkpoint",
    "load_config",
    "predict",
    "to_rgb_array",
]
