"""Export detkit models (ONNX through each model's tensor-only ``export_module()``) and verify the result."""

from detkit.export.onnx import compare_predictions, export_onnx, get_export_module, run_onnx, verify_onnx

__all__ = ["compare_predictions", "export_onnx", "get_export_module", "run_onnx", "verify_onnx"]
