"""Tiled inference for large images: overlapping tiles in batches, detections shifted back and merged.

A large image shrunk to the model's test size loses its small objects; cutting it into tiles at the
training scale keeps them (as SAHI does for MMDetection / Ultralytics models). Merging is class-aware:
plain duplicates (IoU > ``nms_thr``) are suppressed as in NMS (``torchvision.ops.batched_nms`` when edge
merging is off), and with ``merge_edges`` a detection cut by an interior tile edge is merged (box union,
mask union) with the same-class detection that covers it (intersection over the smaller box >= ``ios_thr``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torchvision.ops import batched_nms, box_area, box_iou

from detkit.inference.tile_options import MIN_TILE, TileOptions, check_overlap, check_tile_size, parse_tile
from detkit.ops.tiling import Window, tile_windows

__all__ = [
    "MIN_TILE",
    "TileOptions",
    "check_overlap",
    "check_tile_size",
    "cut_flags",
    "merge_detections",
    "parse_tile",
    "predict_tiled",
    "stitch_sem_seg",
    "tile_windows",
]


def cut_flags(boxes: Tensor, window: Window, image_hw: Sequence[int], margin: float) -> Tensor:
    """bool [N]: the box (image pixels) touches a side of ``window`` that lies inside the image."""
    x0, y0, x1, y1 = window
    h, w = image_hw
    cut = torch.zeros(boxes.shape[0], dtype=torch.bool)
    if x0 > 0:
        cut |= boxes[:, 0] <= x0 + margin
    if y0 > 0:
        cut |= boxes[:, 1] <= y0 + margin
    if x1 < w:
        cut |= boxes[:, 2] >= x1 - margin
    if y1 < h:
        cut |= boxes[:, 3] >= y1 - margin
    return cut


def _ios(box: Tensor, boxes: Tensor) -> Tensor:
    """Intersection of ``box`` [4] with each of ``boxes`` [M,4] over the smaller of the two areas -> [M]."""
    lt = torch.maximum(box[:2], boxes[:, :2])
    rb = torch.minimum(box[2:], boxes[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area = box_area(box[None])[0]
    return inter / torch.minimum(area, box_area(boxes)).clamp(min=1e-6)


def _greedy_merge(boxes: Tensor, cut: Tensor, nms_thr: float, ios_thr: float) -> list[list[int]]:
    """Groups (kept index first) for boxes [N,4] of one class sorted by descending score; see merge_detections."""
    dup = box_iou(boxes, boxes) > nms_thr
    taken = torch.zeros(len(boxes), dtype=torch.bool)
    groups = []
    for i in range(len(boxes)):
        if taken[i]:
            continue
        taken[i] = True
        members, box, partial = [i], boxes[i].clone(), bool(cut[i])
        while True:  # grow the box by every cut piece it covers, until nothing more joins
            cand = torch.where(~taken)[0]
            if len(cand) == 0:
                break
            join = cand[(_ios(box, boxes[cand]) >= ios_thr) & (cut[cand] | partial)]
            if len(join) == 0:
                break
            taken[join] = True
            members += join.tolist()
            box = torch.cat(
                [
                    torch.minimum(box[:2], boxes[join, :2].min(0).values),
                    torch.maximum(box[2:], boxes[join, 2:].max(0).values),
                ]
            )
            partial = partial and bool(cut[join].all())
        taken |= dup[i]  # plain duplicates of the kept detection (NMS)
        groups.append(members)
    return groups


def merge_detections(
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor,
    cut: Tensor | None = None,
    nms_thr: float = 0.5,
    merge_edges: bool = True,
    ios_thr: float = 0.5,
) -> tuple[Tensor, list[list[int]]]:
    """Merge detections gathered from overlapping tiles.

    Greedy in score order per class. Without cut detections (or with ``merge_edges=False``) this is
    ``torchvision.ops.batched_nms``: a detection is dropped when a kept one overlaps it with IoU >
    ``nms_thr``. With ``merge_edges``, a kept detection first absorbs every detection that covers it or
    that it covers (intersection over the smaller box >= ``ios_thr``) when one of the two is cut by a
    tile edge (``cut``), growing to their union, until nothing more joins; its mask is then the union
    of the absorbed masks. A group stops absorbing uncut detections once it holds an uncut one.

    Args:
        boxes: float [N,4] xyxy; scores: [N]; labels: int64 [N]; cut: bool [N] (None: none cut).

    Returns:
        (keep int64 [K] indices of the kept detections, score-descending), and per kept detection the
        indices of its group (itself first): its box is the union of the group's boxes.
    """
    if cut is None or not merge_edges or not bool(cut.any()):
        keep = batched_nms(boxes.float(), scores.float(), labels, nms_thr)
        return keep, [[int(k)] for k in keep]
    keep_all, groups_all = [], []
    for c in labels.unique().tolist():
        idx = torch.where(labels == c)[0]
        idx = idx[scores[idx].argsort(descending=True, stable=True)]
        for g in _greedy_merge(boxes[idx].float(), cut[idx], nms_thr, ios_thr):
            keep_all.append(int(idx[g[0]]))
            groups_all.append(idx[g].tolist())
    order = sorted(range(len(keep_all)), key=lambda k: -float(scores[keep_all[k]]))
    keep = torch.tensor([keep_all[k] for k in order], dtype=torch.int64, device=labels.device)
    return keep, [groups_all[k] for k in order]


def stitch_sem_seg(
    maps: Sequence[Tensor], windows: Sequence[Window], image_hw: Sequence[int], ignore_index: int = 255
) -> Tensor:
    """One [H,W] class map from per-tile maps: each pixel from the tile whose centre region holds it.

    Along each axis neighbouring tiles meet half-way through their overlap.
    """
    h, w = int(image_hw[0]), int(image_hw[1])
    out = torch.full((h, w), ignore_index, dtype=torch.int64)

    def cores(starts: list[int], ends: list[int], length: int) -> dict[int, tuple[int, int]]:
        pairs = sorted(set(zip(starts, ends)))
        bounds = [0] + [(pairs[i][1] + pairs[i + 1][0]) // 2 for i in range(len(pairs) - 1)] + [length]
        return {p[0]: (bounds[i], bounds[i + 1]) for i, p in enumerate(pairs)}

    cx = cores([win[0] for win in windows], [win[2] for win in windows], w)
    cy = cores([win[1] for win in windows], [win[3] for win in windows], h)
    for m, (x0, y0, _, _) in zip(maps, windows):
        (a, b), (c, d) = cx[x0], cy[y0]
        out[c:d, a:b] = m[c - y0 : d - y0, a - x0 : b - x0].to(torch.int64)
    return out


def _gather(
    preds: Sequence[dict], windows: Sequence[Window], image_hw: Sequence[int], margin: float
) -> dict[str, Tensor]:
    """Concatenate per-tile detections shifted into image pixels, with their cut flags and tile index."""
    boxes, scores, labels, cut, tile = [], [], [], [], []
    for t, (p, win) in enumerate(zip(preds, windows)):
        b = p["boxes"].float() + torch.tensor([win[0], win[1], win[0], win[1]], dtype=torch.float32)
        boxes.append(b)
        scores.append(p["scores"].float())
        labels.append(p["labels"].to(torch.int64))
        whole = win == (0, 0, int(image_hw[1]), int(image_hw[0]))
        cut.append(torch.zeros(len(b), dtype=torch.bool) if whole else cut_flags(b, win, image_hw, margin))
        tile.append(torch.full((len(b),), t, dtype=torch.int64))
    return {
        "boxes": torch.cat(boxes),
        "scores": torch.cat(scores),
        "labels": torch.cat(labels),
        "cut": torch.cat(cut),
        "tile": torch.cat(tile),
    }


def _paste_masks(
    preds: Sequence[dict], windows: Sequence[Window], tile: Tensor, groups: list[list[int]], image_hw: Sequence[int]
) -> Tensor:
    """bool [K,H,W]: each kept detection's mask, the union of its group's tile masks shifted into place."""
    offsets = np.cumsum([0] + [len(p["boxes"]) for p in preds])
    out = torch.zeros((len(groups), int(image_hw[0]), int(image_hw[1])), dtype=torch.bool)
    for k, group in enumerate(groups):
        for i in group:
            t = int(tile[i])
            x0, y0, x1, y1 = windows[t]
            out[k, y0:y1, x0:x1] |= preds[t]["masks"][i - offsets[t]].to(torch.bool)
    return out


# run(images, batch_size) -> per-image prediction dicts in each image's pixels (default: runner.predict_arrays)
CropRunner = Callable[[Sequence[np.ndarray], int], list[dict]]


def predict_tiled(
    model: nn.Module,
    image: np.ndarray,
    options: TileOptions,
    score_thr: float | None = None,
    batch_size: int = 1,
    run: CropRunner | None = None,
) -> dict[str, Tensor]:
    """Detect (or segment) objects in one large RGB uint8 image [H,W,3] tile by tile.

    ``run(crops, batch_size)`` predicts a list of tile images [h,w,3] (default: ``predict_arrays`` with the
    model config's test pipeline; tiled evaluation passes its data.val pipeline on the training device).

    Returns the ``detkit.predict`` dict for the whole image: ``boxes`` [N,4], ``scores``, ``labels``
    (``masks`` bool [N,H,W] for instance models), or ``sem_seg`` [H,W] stitched from the tiles.
    """
    if run is None:
        from detkit.inference.runner import predict_arrays

        def run(images: Sequence[np.ndarray], bs: int) -> list[dict]:
            return predict_arrays(model, images, score_thr, bs)

    h, w = image.shape[:2]
    windows = tile_windows(h, w, options.size, options.overlap)
    crops = [image[y0:y1, x0:x1] for x0, y0, x1, y1 in windows]
    preds = run(crops, options.batch_size or batch_size)
    if preds and "sem_seg" in preds[0] and "boxes" not in preds[0]:
        return {"sem_seg": stitch_sem_seg([p["sem_seg"] for p in preds], windows, (h, w))}
    if options.whole_image:
        preds = preds + run([image], 1)
        windows = windows + [(0, 0, w, h)]
    dets = _gather(preds, windows, (h, w), options.edge_margin)
    keep, groups = merge_detections(
        dets["boxes"],
        dets["scores"],
        dets["labels"],
        dets["cut"],
        options.nms_thr,
        options.merge_edges,
        options.ios_thr,
    )
    if options.max_per_img is not None:
        keep, groups = keep[: options.max_per_img], groups[: options.max_per_img]
    boxes = dets["boxes"]
    merged = (
        torch.stack([torch.cat([boxes[g, :2].min(0).values, boxes[g, 2:].max(0).values]) for g in groups])
        if groups
        else boxes.new_zeros((0, 4))
    )
    out = {"boxes": merged, "scores": dets["scores"][keep], "labels": dets["labels"][keep]}
    if preds and "masks" in preds[0]:
        out["masks"] = _paste_masks(preds, windows, dets["tile"], groups, (h, w))
    return out
