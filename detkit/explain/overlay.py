"""Drawing an explanation: the heatmaps blended with the image, the explained boxes (or classes) on top."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["draw_explanation"]


def draw_explanation(image: np.ndarray, result: dict, class_names: Sequence[str] | None = None) -> np.ndarray:
    """RGB uint8 [H,W,3]: the pixelwise maximum of ``result['heatmaps']`` (a ``detkit.explain`` result) blended
    with ``image`` (the library's ``show_cam_on_image``, jet colours, half and half); the explained detections'
    boxes, labels and scores drawn, or for classes and segments a legend of the explained classes (on the blend
    enlarged to a shorter side of ``MIN_DRAW_SIDE`` px when smaller, as ``detkit infer`` draws classes)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    from detkit.inference.classification import enlarged
    from detkit.visualization import draw_instances, draw_legend

    heat = result["heatmaps"]
    heat = heat.numpy() if hasattr(heat, "numpy") else np.asarray(heat)
    peak = heat.max(0) if len(heat) else np.zeros(image.shape[:2], np.float32)
    out = show_cam_on_image(np.float32(image) / 255.0, peak, use_rgb=True, image_weight=0.5)
    if "heatmap_dets" in result:
        idx = result["heatmap_dets"]
        return draw_instances(
            out, result["boxes"][idx], result["labels"][idx], result["scores"][idx], None, class_names
        )
    out = enlarged(out)  # the legend of a small image would be cut: as infer draws a class
    labels = [int(c) for c in result["heatmap_labels"]]
    return draw_legend(out, labels, class_names) if class_names is not None and labels else out
