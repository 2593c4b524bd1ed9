"""What ``explain`` explains when told: a class (by name or index) and, for detectors, the detection that best
overlaps a box; and the score threshold the explained detections passed (the config's unless given).

As pytorch-grad-cam's ``targets=[ClassifierOutputTarget(281)]``: a chosen class of a classifier is explained
whether or not it is among the top classes; a detector's or segmentor's chosen class narrows what is explained
to the detections (or the segment) of that class.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.ops import box_iou

from detkit.explain.layers import ExplainError
from detkit.utils.class_names import ClassNameError
from detkit.utils.class_names import class_index as resolve_class_index

__all__ = [
    "NoOverlapError",
    "box_text",
    "check_box",
    "class_index",
    "config_score_thr",
    "pick_detections",
    "threshold_text",
]


class NoOverlapError(ExplainError):
    """A box that overlaps none of an image's detections (``target_box``, ``--box``)."""


def class_index(spec: int | str, class_names: Sequence[str]) -> int:
    """The index of class ``spec``: a name (any case; of names differing only in case, the exact one) or an index
    0..C-1 (an int or digits), by the rule of :mod:`detkit.utils.class_names`; a mistake is an ExplainError."""
    try:
        return resolve_class_index(spec, class_names)
    except ClassNameError as e:
        raise ExplainError(str(e)) from None
    except TypeError:
        raise TypeError(f"explain: target_class must be a class name or index, got {type(spec).__name__}") from None


def check_box(box: Sequence[float] | Tensor) -> Tensor:
    """``box`` as float32 [4] xyxy (image pixels), with x2 > x1 and y2 > y1."""
    values = torch.as_tensor(box, dtype=torch.float32).flatten()
    if values.numel() != 4 or not bool(torch.isfinite(values).all()):
        raise ExplainError(f"a target box is 4 numbers x1,y1,x2,y2 (image pixels), got {box_text(box)}")
    if not (values[2] > values[0] and values[3] > values[1]):
        raise ExplainError(f"a target box x1,y1,x2,y2 needs x2 > x1 and y2 > y1, got {box_text(values)}")
    return values


def box_text(box: Sequence[float] | Tensor) -> str:
    """``x1,y1,x2,y2`` as a user writes it (``--box``)."""
    values = box.tolist() if isinstance(box, Tensor) else list(box)
    return ",".join(f"{float(v):g}" for v in values)


def config_score_thr(model: nn.Module) -> float | None:
    """The score threshold of the model's test settings (R-CNN ``box_head.score_thr``, YOLO ``head.test_cfg``);
    None for a model without one (classifiers, segmentors)."""
    for name in ("box_head", "head"):
        head = getattr(model, name, None)
        head = getattr(head, "det", head)  # YOLOSegHead keeps its YOLOHead as .det
        if isinstance(getattr(head, "score_thr", None), (int, float)):
            return float(head.score_thr)
        test_cfg = getattr(head, "test_cfg", None)
        if isinstance(test_cfg, dict) and "score_thr" in test_cfg:
            return float(test_cfg["score_thr"])
    return None


def threshold_text(value: float | None, given: bool, flag: str = "score_thr") -> str:
    """``the config's test threshold 0.001`` or ``score_thr 0.3``: a threshold and where it came from."""
    if value is None:
        return "the config's test threshold"
    return f"{flag} {value:g}" if given else f"the config's test threshold {value:g}"


def pick_detections(
    pred: dict, max_dets: int, label: int | None = None, box: Tensor | None = None, which: str = "detection(s)"
) -> tuple[Tensor, float | None]:
    """The detections to explain: the ``max_dets`` best (of class ``label`` when given), or the one whose box has
    the highest IoU with ``box`` (xyxy, image pixels; ties: the higher score).

    Returns:
        the detections' indices int64 [K] into ``pred['boxes']``, best first, and the picked detection's IoU with
        ``box`` (None without ``box``).

    Raises:
        NoOverlapError: ``box`` overlaps none of the detections (``which`` describes them in the message).
    """
    order = torch.argsort(pred["scores"], descending=True, stable=True)
    if label is not None:
        order = order[pred["labels"][order] == label]
    if box is None:
        return order[:max_dets].to(torch.int64), None
    ious = box_iou(box.reshape(1, 4).to(pred["boxes"]), pred["boxes"][order].float())[0]  # [N] in score order
    if ious.numel() == 0 or float(ious.max()) <= 0.0:
        raise NoOverlapError(
            f"the box {box_text(box)} overlaps none of the {len(order)} {which}; give x1,y1,x2,y2 in the image's "
            "pixels around a detected object, or lower the score threshold to keep more detections"
        )
    best = int(torch.argmax(ious))  # the first maximum: the higher score of equal IoUs
    return order[best : best + 1].to(torch.int64), float(ious[best])
