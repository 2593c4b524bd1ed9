"""detkit: a PyTorch toolkit for object detection and segmentation."""

__version__ = "0.1.0"

from detkit.config import load_config  # noqa: E402
from detkit.models.build import build_model  # noqa: E402
from detkit.api import init_model, predict  # noqa: E402

__all__ = ["__version__", "load_config", "build_model", "init_model", "predict"]
