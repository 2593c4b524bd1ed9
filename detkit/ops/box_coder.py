"""Faster R-CNN box deltas (dx, dy, dw, dh), the same float operations as torchvision's ``BoxCoder``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


class BoxCoder:
    """Encode boxes as deltas relative to reference boxes and decode them back.

    Args:
        weights: ``(wx, wy, ww, wh)`` multipliers of the deltas (RPN: 1,1,1,1; RoI box head: 10,10,5,5).
        clip: upper bound on ``dw``/``dh`` before ``exp`` (torchvision's ``bbox_xform_clip``).

    Every operation works on any leading shape ``[..., 4]`` and broadcasts, so a batch of images
    can be coded at once; results equal torchvision's ``BoxCoder.encode_single/decode_single``.
    """

    def __init__(self, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0), clip: float = math.log(1000.0 / 16)):
        if len(weights) != 4:
            raise ValueError(f"BoxCoder weights must have 4 values (wx, wy, ww, wh), got {weights!r}")
        self.weights = tuple(float(w) for w in weights)
        self.clip = float(clip)

    def encode(self, gt_boxes: Tensor, ref_boxes: Tensor) -> Tensor:
        """Deltas that turn ``ref_boxes`` (anchors/proposals) into ``gt_boxes``.

        Args:
            gt_boxes: Tensor[..., 4] xyxy targets.
            ref_boxes: Tensor[..., 4] xyxy reference boxes (broadcastable to ``gt_boxes``).

        Returns:
            Tensor[..., 4]: ``(dx, dy, dw, dh)`` scaled by the weights.
        """
        wx, wy, ww, wh = self.weights
        ex_widths = ref_boxes[..., 2] - ref_boxes[..., 0]
        ex_heights = ref_boxes[..., 3] - ref_boxes[..., 1]
        ex_ctr_x = ref_boxes[..., 0] + 0.5 * ex_widths
        ex_ctr_y = ref_boxes[..., 1] + 0.5 * ex_heights

        gt_widths = gt_boxes[..., 2] - gt_boxes[..., 0]
        gt_heights = gt_boxes[..., 3] - gt_boxes[..., 1]
        gt_ctr_x = gt_boxes[..., 0] + 0.5 * gt_widths
        gt_ctr_y = gt_boxes[..., 1] + 0.5 * gt_heights

        dx = wx * (gt_ctr_x - ex_ctr_x) / ex_widths
        dy = wy * (gt_ctr_y - ex_ctr_y) / ex_heights
        dw = ww * torch.log(gt_widths / ex_widths)
        dh = wh * torch.log(gt_heights / ex_heights)
        return torch.stack((dx, dy, dw, dh), dim=-1)

    def decode(self, deltas: Tensor, ref_boxes: Tensor) -> Tensor:
        """Apply ``deltas`` to ``ref_boxes``.

        Args:
            deltas: Tensor[..., 4 * K] (K boxes per reference box, e.g. one per class).
            ref_boxes: Tensor[..., 4], broadcastable to ``deltas``' leading shape; cast to ``deltas.dtype``.

        Returns:
            Tensor[..., 4 * K] xyxy boxes.
        """
        ref_boxes = ref_boxes.to(deltas.dtype)
        widths = (ref_boxes[..., 2] - ref_boxes[..., 0])[..., None]  # [..., 1]
        heights = (ref_boxes[..., 3] - ref_boxes[..., 1])[..., None]
        ctr_x = ref_boxes[..., 0, None] + 0.5 * widths
        ctr_y = ref_boxes[..., 1, None] + 0.5 * heights

        wx, wy, ww, wh = self.weights
        dx = deltas[..., 0::4] / wx  # [..., K]
        dy = deltas[..., 1::4] / wy
        dw = torch.clamp(deltas[..., 2::4] / ww, max=self.clip)
        dh = torch.clamp(deltas[..., 3::4] / wh, max=self.clip)

        pred_ctr_x = dx * widths + ctr_x
        pred_ctr_y = dy * heights + ctr_y
        half_w = 0.5 * (torch.exp(dw) * widths)
        half_h = 0.5 * (torch.exp(dh) * heights)
        boxes = torch.stack(
            (pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h), dim=-1
        )  # [..., K, 4]
        return boxes.flatten(-2)
