"""Measure what tiling buys on a large image: a synthetic shapes mosaic, recall of whole-image vs tiled passes."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torchvision.ops import box_iou

__all__ = ["compare_tiling", "large_shapes_image", "match_recall"]


def large_shapes_image(
    seed: int = 0, size: Sequence[int] = (2000, 3000), patch: int = 250, max_objects: int = 6
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A large RGB image made of shapes patches (``detkit.data.synthetic.render_image``) side by side.

    Each ``patch`` x ``patch`` cell is one shapes image, so the objects have the sizes they have in the
    training data (12 px up to 0.45 x the patch). ``size`` is rounded down to whole patches.

    Returns:
        image uint8 [H,W,3], gt boxes float32 [N,4] xyxy (tight boxes of the shapes' masks), labels int64 [N].
    """
    from detkit.data.synthetic import render_image

    rows, cols = int(size[0]) // patch, int(size[1]) // patch
    if rows < 1 or cols < 1:
        raise ValueError(f"size {tuple(size)} is smaller than one {patch} px patch")
    image = np.zeros((rows * patch, cols * patch, 3), np.uint8)
    boxes, labels = [], []
    for r in range(rows):
        for c in range(cols):
            rng = np.random.default_rng([seed, r, c])
            img, objects = render_image(rng, (patch, patch), max_objects=max_objects)
            image[r * patch : (r + 1) * patch, c * patch : (c + 1) * patch] = img
            for o in objects:
                ys, xs = np.nonzero(o["mask"])
                boxes.append(
                    [xs.min() + c * patch, ys.min() + r * patch, xs.max() + 1 + c * patch, ys.max() + 1 + r * patch]
                )
                labels.append(o["label"])
    return image, np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64)


def match_recall(
    pred: dict[str, Tensor], gt_boxes: np.ndarray, gt_labels: np.ndarray, iou_thr: float = 0.5, score_thr: float = 0.3
) -> dict[str, float]:
    """Greedy class-aware matching (best score first, as COCO): recall, precision and counts at ``iou_thr``."""
    keep = pred["scores"] >= score_thr
    boxes, scores, labels = pred["boxes"][keep].float(), pred["scores"][keep], pred["labels"][keep]
    gt = torch.as_tensor(gt_boxes, dtype=torch.float32)
    gl = torch.as_tensor(gt_labels)
    matched = torch.zeros(len(gt), dtype=torch.bool)
    tp = 0
    if len(boxes) and len(gt):
        iou = box_iou(boxes, gt)
        iou[labels[:, None] != gl[None, :]] = 0
        for i in scores.argsort(descending=True).tolist():
            cand = iou[i].clone()
            cand[matched] = 0
            j = int(cand.argmax())
            if cand[j] >= iou_thr:
                matched[j] = True
                tp += 1
    return {
        "recall": tp / max(1, len(gt)),
        "precision": tp / max(1, len(boxes)),
        "matched": tp,
        "num_gt": len(gt),
        "num_det": len(boxes),
    }


def compare_tiling(
    model: nn.Module,
    image: np.ndarray,
    gt_boxes: np.ndarray,
    gt_labels: np.ndarray,
    tile: Any,
    score_thr: float = 0.3,
    iou_thr: float = 0.5,
    batch_size: int = 4,
) -> dict[str, dict]:
    """Recall of the whole-image pass (the config's test resize and detection cap), the whole-image pass
    with the per-image detection cap lifted (when the model has ``box_head.max_per_img``), and the
    tiled pass. Each entry also has ``seconds``."""
    import detkit

    runs: dict[str, dict] = {}

    def timed(name: str, **kw: Any) -> None:
        t0 = time.perf_counter()
        pred = detkit.predict(model, image, score_thr=score_thr, batch_size=batch_size, **kw)
        runs[name] = {
            **match_recall(pred, gt_boxes, gt_labels, iou_thr, score_thr),
            "seconds": time.perf_counter() - t0,
        }

    timed("whole_image")
    head = getattr(model, "box_head", None)
    if head is not None and hasattr(head, "max_per_img"):
        cap = head.max_per_img
        head.max_per_img = max(cap, 10 * len(gt_boxes))
        try:
            timed("whole_image_uncapped")
        finally:
            head.max_per_img = cap
    timed("tiled", tile=tile)
    return runs
