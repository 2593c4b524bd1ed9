"""``detkit.explain``: a model's predictions on one image plus class-activation maps of what it explains."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from detkit.explain.session import CamSession, cam_method, cam_session
from detkit.explain.targets import DetectionTarget

__all__ = ["explain", "layer_names"]


def _detection_targets(session: CamSession, pred: dict, max_dets: int) -> tuple[list, dict]:
    """The ``max_dets`` best detections: their targets, and ``heatmap_dets`` / ``heatmap_labels``."""
    order = torch.argsort(pred["scores"], descending=True, stable=True)[:max_dets]
    boxes = session.geometry.boxes_to_input(pred["boxes"][order])
    labels = pred["labels"][order]
    targets = [DetectionTarget(b, int(lab)) for b, lab in zip(boxes, labels)]
    return targets, {"heatmap_dets": order.to(torch.int64), "heatmap_labels": labels.to(torch.int64)}


def _class_targets(pred: dict, max_dets: int) -> tuple[list, dict]:
    """The top classes of a classifier (``labels``, most likely first), at most ``max_dets``."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    labels = pred["labels"][:max_dets].to(torch.int64)
    return [ClassifierOutputTarget(int(c)) for c in labels], {"heatmap_labels": labels}


def _segment_targets(session: CamSession, pred: dict, max_dets: int) -> tuple[list, dict]:
    """The classes present in the predicted map (largest area first, at most ``max_dets``): each one's logits
    summed over its predicted pixels of the network input (the library's ``SemanticSegmentationTarget``)."""
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

    classes, counts = torch.unique(pred["sem_seg"], return_counts=True)
    order = torch.argsort(counts, descending=True, stable=True)
    classes = classes[order][:max_dets].to(torch.int64)
    logits = session.info.result  # [1,C,H,W] at the network input
    argmax = logits[0].argmax(0).cpu().numpy()
    inside = session.geometry.content(argmax.shape)
    targets = [SemanticSegmentationTarget(int(c), np.float32(argmax == int(c)) * inside) for c in classes]
    return targets, {"heatmap_labels": classes}


def explain(
    model: nn.Module,
    image: Any,
    method: str = "eigencam",
    target_layer: str | None = None,
    score_thr: float | None = None,
    max_dets: int = 10,
    channel_order: str = "rgb",
) -> dict:
    """Predictions of ``model`` on one image plus class-activation maps (the grad-cam package, ``.[explain]``).

    Args:
        model: a detkit ``TwoStageDetector``, ``OneStageDetector``, ``Segmentor`` or ``Classifier`` (e.g. from
            ``detkit.init_model``); it is left as it was (mode, flags, gradients).
        image: a path, a PIL image or a numpy uint8 image (RGB unless ``channel_order='bgr'``), as ``predict``.
        method: ``'eigencam'`` (gradient-free: the first principal component of the layer's activations, the
            same map for every target), ``'gradcam'``, ``'gradcam++'`` or ``'hirescam'`` (gradients of each
            target: one detection's score and box, one class's logit, one class's segment).
        target_layer: a module name (``backbone.layer4``, ``neck.output_convs.1``) or a part whose output is a
            list of maps (``neck``, ``backbone``: every level, merged); None: the maps the head reads
            (``layer_names(model, image)`` of ``detkit.explain`` lists the valid names).
        score_thr: the detections' score threshold (default: the config's test threshold).
        max_dets: at most this many maps: the best detections, the top classes or the largest segments.

    Returns:
        the ``predict`` dict of the image plus ``heatmaps`` float32 [K,H,W] in 0..1 at the image's size, one per
        explained detection (detectors), top class (classifiers) or class present (segmentors);
        ``heatmap_labels`` int64 [K] (the class of each map); for detectors ``heatmap_dets`` int64 [K] (the
        index of each map's detection in ``boxes``); ``method`` and ``target_layer`` (the layer used).

    Raises:
        ExplainError: an unknown method or layer (the message lists the valid names, nearest first), or a
            model of another type.
    """
    from detkit.inference.arguments import check_count, check_model, check_score_thr
    from detkit.inference.runner import predict_arrays, to_rgb_array

    check_model(model, "explain")
    cam_method(method)  # an unknown method or a missing package before any work
    max_dets = check_count(max_dets, "max_dets", "explain")
    score_thr = check_score_thr(score_thr, "explain")
    if isinstance(image, (list, tuple)):
        raise TypeError(
            f"explain: image is one image (a path, a PIL image or a numpy image), got a "
            f"{type(image).__name__} of {len(image)}; call explain once per image"
        )
    rgb = to_rgb_array(image, channel_order)
    pred = predict_arrays(model, [rgb], score_thr)[0]
    with cam_session(model, rgb, target_layer) as session:
        kind = session.adapter.kind
        if kind == "detector":
            targets, extra = _detection_targets(session, pred, int(max_dets))
        elif kind == "classifier":
            targets, extra = _class_targets(pred, int(max_dets))
        else:
            targets, extra = _segment_targets(session, pred, int(max_dets))
        heatmaps = session.heatmaps(method, targets)
    pred.update(extra)
    pred.update(heatmaps=torch.from_numpy(heatmaps), method=str(method).lower(), target_layer=session.layer)
    return pred


def layer_names(model: nn.Module, image: Any = None, channel_order: str = "rgb") -> list[str]:
    """The layers ``explain`` accepts for ``model``, in forward order (from a probe pass on ``image``; by default
    a grey 320x320 image)."""
    from detkit.inference.runner import to_rgb_array

    rgb = np.full((320, 320, 3), 114, np.uint8) if image is None else to_rgb_array(image, channel_order)
    with cam_session(model, rgb) as session:
        return session.info.names
