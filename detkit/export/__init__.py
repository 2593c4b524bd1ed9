"""Export detkit models to ONNX (through the wrapper registered for each model type) and verify the result."""

from detkit.export.common import ExportError
from detkit.export.onnx import export_onnx, onnx_session, run_onnx
from detkit.export.verify import compare_predictions, verify_onnx
from detkit.export.wrappers import get_export_module, register_export_wrapper

__all__ = [
    "ExportError",
    "compare_predictions",
    "export_onnx",
    "get_export_module",
    "onnx_session",
    "register_export_wrapper",
    "run_onnx",
    "verify_onnx",
]
