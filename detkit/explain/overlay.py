"""Drawing an explanation: the heatmaps blended with the image, the explained boxes (or classes) on top."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["draw_explanation"]


def _enlarged(image: np.ndarray) -> np.ndarray:
    """``image`` enlarged (nearest neighbour) so that its shorter side is ``MIN_DRAW_SIDE`` px, as ``detkit
    infer`` draws a class on a small image; larger images as they are."""
    import cv2

    from detkit.inference.classification import MIN_DRAW_SIDE

    scale = MIN_DRAW_SIDE / min(image.shape[:2])
    if scale <= 1:
        return image
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)


def draw_explanation(image: np.ndarray, result: dict, class_names: Sequence[str] | None = None) -> np.ndarray:
    """RGB uint8 [H,W,3]: the pixelwise maximum of ``result['heatmaps']`` (a ``detkit.explain`` result) blended
    with ``image`` (the library's ``show_cam_on_image``, jet colours, half and half); the explained detections'
    boxes, labels and scores drawn, or for classes and segments a legend of the explained classes (on the blend
    enlarged to a shorter side of ``MIN_DRAW_SIDE`` px when smaller, as ``detkit infer`` draws classes)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

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
    out = _enlarged(out)  # the legend of a small image would be cut: as infer draws a class
    labels = [int(c) for c in result["heatmap_labels"]]
    return draw_legend(out, labels, class_names) if class_names is not None and labels else out
