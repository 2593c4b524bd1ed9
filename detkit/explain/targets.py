"""What a gradient-based CAM differentiates: one detection's score and box (classes and segments use the CAM
library's own ``ClassifierOutputTarget`` and ``SemanticSegmentationTarget``)."""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import box_iou

__all__ = ["DetectionTarget"]


class DetectionTarget:
    """Score of one detection: its class score at the candidate that gave it, plus that candidate's box IoU.

    The candidate is the one (YOLO anchor, or R-CNN RoI with its class box) whose box overlaps ``box`` most:
    the detection's own source when ``box`` is a detection, the model's best match when it is a ground-truth
    box (the pointing game). As the library's ``FasterRCNNBoxScoreTarget``, the IoU term makes the box
    matter as well as the class score; unlike it, the candidates come before NMS and the score threshold, so
    every detection and every ground-truth object has a candidate.

    Args:
        box: float [4] xyxy in network-input pixels.
        label: the class index (0..C-1).

    ``target(output)`` with ``output = {"boxes": [A,4] or [A,C,4], "scores": [A,C]}`` -> a 0-d tensor.
    """

    def __init__(self, box: Tensor, label: int):
        self.box = torch.as_tensor(box, dtype=torch.float32).reshape(1, 4)
        self.label = int(label)

    def __call__(self, output: dict[str, Tensor]) -> Tensor:
        boxes, scores = output["boxes"], output["scores"][:, self.label]
        if boxes.dim() == 3:  # R-CNN: one box per class
            boxes = boxes[:, self.label]
        if boxes.shape[0] == 0:
            return scores.sum() * 0.0
        ious = box_iou(self.box.to(boxes.device, boxes.dtype), boxes)[0]  # [A]
        best = int(ious.detach().argmax())
        return scores[best] + ious[best]
