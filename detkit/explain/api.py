"""``detkit.explain``: a model's predictions on one image plus class-activation maps of what it explains."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from detkit.explain.adapters import adapter_for
from detkit.explain.choice import check_box, class_index, config_score_thr, pick_detections, threshold_text
from detkit.explain.layers import ExplainError
from detkit.explain.session import CamSession, cam_method, cam_session
from detkit.explain.targets import DetectionTarget

__all__ = ["explain", "layer_names"]


def _detection_targets(session: CamSession, pred: dict, order: torch.Tensor) -> tuple[list, dict]:
    """The targets of the detections ``order`` (indices into ``pred``), and ``heatmap_dets`` / ``heatmap_labels``."""
    boxes = session.geometry.boxes_to_input(pred["boxes"][order])
    labels = pred["labels"][order]
    targets = [DetectionTarget(b, int(lab)) for b, lab in zip(boxes, labels)]
    return targets, {"heatmap_dets": order.to(torch.int64), "heatmap_labels": labels.to(torch.int64)}


def _chosen_detections(model: nn.Module, pred: dict, rgb: np.ndarray, max_dets: int, choice: dict) -> tuple:
    """Which detections to explain (``pick_detections``) and the extra keys: ``score_thr``, ``target_iou``."""
    given = choice["score_thr"] is not None
    thr = choice["score_thr"] if given else config_score_thr(model)
    which = "detection(s)"
    if choice["label"] is not None:
        names = list(model.class_names)
        which += f" of class '{names[choice['label']]}'"
    which += f" scoring > {threshold_text(thr, given)} in this {rgb.shape[1]}x{rgb.shape[0]} image"
    order, iou = pick_detections(pred, max_dets, choice["label"], choice["box"], which)
    extra = {"score_thr": thr} if iou is None else {"score_thr": thr, "target_iou": iou}
    return order, extra


def _class_targets(pred: dict, max_dets: int, label: int | None) -> tuple[list, dict]:
    """The top classes of a classifier (``labels``, most likely first), at most ``max_dets``; or class ``label``."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    labels = pred["labels"][:max_dets] if label is None else torch.tensor([label])
    labels = labels.to(torch.int64)
    return [ClassifierOutputTarget(int(c)) for c in labels], {"heatmap_labels": labels}


def _segment_targets(session: CamSession, pred: dict, max_dets: int, label: int | None) -> tuple[list, dict]:
    """The classes present in the predicted map (largest area first, at most ``max_dets``; only ``label`` when
    given): each one's logits summed over its predicted pixels of the network input (the library's
    ``SemanticSegmentationTarget``)."""
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

    classes, counts = torch.unique(pred["sem_seg"], return_counts=True)
    order = torch.argsort(counts, descending=True, stable=True)
    if label is not None:
        order = order[classes[order] == label]
    classes = classes[order][:max_dets].to(torch.int64)
    logits = session.info.result  # [1,C,H,W] at the network input
    argmax = logits[0].argmax(0).cpu().numpy()
    inside = session.geometry.content(argmax.shape)
    targets = [SemanticSegmentationTarget(int(c), np.float32(argmax == int(c)) * inside) for c in classes]
    return targets, {"heatmap_labels": classes}


def _check_arguments(model: nn.Module, image: Any, method: str, max_dets: Any, choice: dict) -> tuple[str, int, dict]:
    """Every argument checked before any work: the model's kind, ``max_dets``, and ``choice`` (``target_class``,
    ``target_box``, ``score_thr``) as ``label`` (an index), ``box`` (float32 [4]; detectors only), ``score_thr``."""
    from detkit.inference.arguments import check_count, check_model, check_score_thr

    check_model(model, "explain")
    cam_method(method)  # an unknown method or a missing package
    max_dets = int(check_count(max_dets, "max_dets", "explain"))
    kind = adapter_for(model).kind
    if choice["target_box"] is not None and kind != "detector":
        raise ExplainError(
            f"a target box needs a detector; this is a {type(model).__name__} (choose a class with target_class)"
        )
    target_class, target_box = choice["target_class"], choice["target_box"]
    label = None if target_class is None else class_index(target_class, getattr(model, "class_names", []))
    box = None if target_box is None else check_box(target_box)
    score_thr = check_score_thr(choice["score_thr"], "explain")
    if isinstance(image, (list, tuple)):
        raise TypeError(
            f"explain: image is one image (a path, a PIL image, a numpy image or a tensor image), got a "
            f"{type(image).__name__} of {len(image)}; call explain once per image"
        )
    return kind, max_dets, {"label": label, "box": box, "score_thr": score_thr}


def explain(
    model: nn.Module,
    image: Any,
    method: str = "eigencam",
    target_layer: str | None = None,
    score_thr: float | None = None,
    max_dets: int = 10,
    channel_order: str = "rgb",
    *,
    target_class: int | str | None = None,
    target_box: Any = None,
) -> dict:
    """Predictions of ``model`` on one image plus class-activation maps (the grad-cam package, ``.[explain]``).

    Args:
        model: a detkit ``TwoStageDetector``, ``OneStageDetector``, ``Segmentor`` or ``Classifier`` (e.g. from
            ``detkit.init_model``); it is left as it was (mode, flags, gradients).
        image: a path, a PIL image, a numpy image (RGB unless ``channel_order='bgr'``) or a tensor image, as
            ``predict`` reads them (``detkit.inference.runner.to_rgb_array``): numpy uint8, or float / uint16
            converted by ``predict``'s rule; a float tensor [3,H,W] in 0..1 or a uint8 [H,W,3] (RGB). A batch
            tensor [B,3,H,W] is a ValueError: one image per call.
        method: ``'eigencam'`` (gradient-free: the first principal component of the layer's activations, the
            same map for every target), ``'gradcam'``, ``'gradcam++'`` or ``'hirescam'`` (gradients of each
            target: one detection's score and box, one class's logit, one class's segment).
        target_layer: a module name (``backbone.layer4``, ``neck.output_convs.1``) or a part whose output is a
            list of maps (``neck``, ``backbone``: every level, merged); None: the maps the head reads
            (``layer_names(model, image)`` of ``detkit.explain`` lists the valid names).
        score_thr: the detections' score threshold (default: the config's test threshold; the result says which).
        max_dets: at most this many maps: the best detections, the top classes or the largest segments.
        target_class: a class name (any case) or index: a classifier's map of that class (instead of the top
            classes, as the library's ``ClassifierOutputTarget``); a detector's detections, or a segmentor's
            segment, of that class only.
        target_box: detectors: x1,y1,x2,y2 in image pixels; the one detection whose box has the highest IoU with
            it is explained (of ``target_class`` when given).

    Returns:
        the ``predict`` dict of the image plus ``heatmaps`` float32 [K,H,W] in 0..1 at the image's size, one per
        explained detection (detectors), top class (classifiers) or class present (segmentors);
        ``heatmap_labels`` int64 [K] (the class of each map); for detectors ``heatmap_dets`` int64 [K] (the
        index of each map's detection in ``boxes``), ``score_thr`` (the threshold used) and with ``target_box``
        ``target_iou`` (the picked detection's IoU with it); ``method`` and ``target_layer`` (the layer used).

    Raises:
        ExplainError: an unknown method, layer or class (the message lists the nearest valid names), a class
            index out of range, a target box on a model other than a detector, a model of another type;
            ``NoOverlapError`` (an ``ExplainError``): ``target_box`` overlaps none of the detections.
    """
    from detkit.inference.runner import predict_arrays, to_rgb_array

    given = {"target_class": target_class, "target_box": target_box, "score_thr": score_thr}
    kind, max_dets, choice = _check_arguments(model, image, method, max_dets, given)
    rgb = to_rgb_array(image, channel_order, who="explain")
    pred = predict_arrays(model, [rgb], choice["score_thr"])[0]
    if kind == "detector":  # a box that overlaps nothing fails before the layers are probed
        order, extra = _chosen_detections(model, pred, rgb, max_dets, choice)
    with cam_session(model, rgb, target_layer) as session:
        if kind == "detector":
            targets, found = _detection_targets(session, pred, order)
            extra.update(found)
        elif kind == "classifier":
            targets, extra = _class_targets(pred, max_dets, choice["label"])
        else:
            targets, extra = _segment_targets(session, pred, max_dets, choice["label"])
        heatmaps = session.heatmaps(method, targets)
    pred.update(extra)
    pred.update(heatmaps=torch.from_numpy(heatmaps), method=str(method).lower(), target_layer=session.layer)
    return pred


def layer_names(model: nn.Module, image: Any = None, channel_order: str = "rgb") -> list[str]:
    """The layers ``explain`` accepts for ``model``, in forward order (from a probe pass on ``image``; by default
    a grey 320x320 image)."""
    from detkit.inference.runner import to_rgb_array

    rgb = np.full((320, 320, 3), 114, np.uint8) if image is None else to_rgb_array(image, channel_order, who="explain")
    with cam_session(model, rgb) as session:
        return session.info.names
