"""One image's prediction as COCO results records (xywh boxes, category ids, RLE masks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from pycocotools import mask as mask_utils


def masks_to_rle(masks: torch.Tensor) -> list[dict]:
    """Encode instance masks ``[N, H, W]`` (bool/uint8, or float thresholded at 0.5) as COCO RLEs.

    Each RLE is ``{'size': [H, W], 'counts': str}`` (counts decoded from bytes, so it is JSON-ready).
    """
    m = masks.detach()
    m = (m > 0.5) if m.is_floating_point() else (m != 0)
    if m.dim() != 3:
        raise ValueError(f"masks must be [N, H, W], got shape {tuple(m.shape)}")
    if m.shape[0] == 0:
        return []
    arr = np.asfortranarray(m.to("cpu", torch.uint8).numpy().transpose(1, 2, 0))  # [H, W, N], Fortran order
    rles = mask_utils.encode(arr)
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return rles


def label_list(label_to_cat_id: Sequence[int] | Mapping[int, int]) -> list[int]:
    """Return the label -> category id map as a list indexed by label (a dict must have keys 0..C-1)."""
    if isinstance(label_to_cat_id, Mapping):
        keys = sorted(int(k) for k in label_to_cat_id)
        if keys != list(range(len(keys))):
            raise ValueError(f"label_to_cat_id keys must be the contiguous labels 0..{len(keys) - 1}, got {keys}")
        return [int(label_to_cat_id[k]) for k in sorted(label_to_cat_id, key=int)]
    return [int(c) for c in label_to_cat_id]


def prediction_to_coco(
    image_id: int, pred: Mapping[str, torch.Tensor], label_to_cat_id: Sequence[int], with_masks: bool = True
) -> list[dict]:
    """COCO results records for one image's prediction (xyxy boxes -> xywh, labels -> category ids, masks -> RLE).

    ``pred``: ``boxes`` [N,4] xyxy, ``scores`` [N], ``labels`` [N] in 0..C-1, optional ``masks`` [N,H,W].
    """
    boxes = pred["boxes"].detach().to("cpu", torch.float64).reshape(-1, 4)
    boxes[:, 2:] -= boxes[:, :2]  # xyxy -> xywh
    scores = pred["scores"].detach().cpu().tolist()
    labels = pred["labels"].detach().cpu().tolist()
    n_cls = len(label_to_cat_id)
    if labels and not (min(labels) >= 0 and max(labels) < n_cls):
        raise ValueError(
            f"image {image_id}: predicted labels must lie in 0..{n_cls - 1} (the dataset's "
            f"{n_cls} classes), got {min(labels)}..{max(labels)}; check model.num_classes"
        )
    rles = masks_to_rle(pred["masks"]) if with_masks and pred.get("masks") is not None else None
    out = []
    for j, (box, score, label) in enumerate(zip(boxes.tolist(), scores, labels)):
        r = {
            "image_id": image_id,
            "category_id": int(label_to_cat_id[label]),
            "bbox": [float(v) for v in box],
            "score": float(score),
        }
        if rles is not None:
            r["segmentation"] = rles[j]
        out.append(r)
    return out
