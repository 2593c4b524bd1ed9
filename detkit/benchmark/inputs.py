"""Synthetic benchmark inputs: smooth random images and random ground truth (no data set needed)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def synthetic_image(h: int, w: int, seed: int = 2) -> Tensor:
    """A smooth random uint8 image [3,H,W] (upsampled noise: blob-like, gives realistic proposals)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, max(1, h // 32), max(1, w // 32), generator=g)
    img = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)[0] * 255
    return img.round().to(torch.uint8)


def synthetic_targets(
    batch: int, size: int, boxes_per_image: int = 4, seed: int = 3, with_masks: bool = False, num_classes: int = 80
) -> list[dict[str, Tensor]]:
    """Per image a few random gt boxes (xyxy, 40..190 px), labels 0..num_classes-1 and box-shaped masks."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(batch):
        xy = torch.rand(boxes_per_image, 2, generator=g) * (size * 0.6)
        wh = 40 + torch.rand(boxes_per_image, 2, generator=g) * 150
        boxes = torch.cat([xy, (xy + wh).clamp(max=size)], 1)
        t = {"boxes": boxes, "labels": torch.randint(0, num_classes, (boxes_per_image,), generator=g)}
        if with_masks:
            masks = torch.zeros(boxes_per_image, size, size, dtype=torch.uint8)
            for j, (x0, y0, x1, y1) in enumerate(boxes.round().int().tolist()):
                masks[j, y0:y1, x0:x1] = 1
            t["masks"] = masks
        out.append(t)
    return out
