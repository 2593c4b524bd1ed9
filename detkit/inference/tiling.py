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


NearFinder = Callable[[Tensor, np.ndarray], Tensor]  # (box [4], alive bool [N]) -> ascending alive indices


def _near_finder(boxes: Tensor, prune: bool) -> NearFinder:
    """``near(box, alive)``: the alive detections (int64 [M], ascending) that may overlap ``box`` [4].

    With ``prune`` (only overlapping boxes can join or be duplicates), those whose x-range may meet the box's,
    found by binary search in the boxes [N,4] sorted by x0; else every alive detection.
    """
    if not prune:
        return lambda box, alive: torch.from_numpy(np.flatnonzero(alive))
    x0 = boxes[:, 0].double().numpy()
    order = np.argsort(x0, kind="stable")
    x0_sorted = x0[order]
    widths = boxes[:, 2].double() - boxes[:, 0].double()
    reach = float(widths.max()) * (1 + 1e-6) + 1e-3 if len(boxes) else 0.0  # widest box, a margin for rounding

    def near(box: Tensor, alive: np.ndarray) -> Tensor:
        lo = np.searchsorted(x0_sorted, float(box[0]) - reach, side="left")
        hi = np.searchsorted(x0_sorted, float(box[2]), side="right")
        idx = order[lo:hi]
        return torch.from_numpy(np.sort(idx[alive[idx]]))

    return near


def _grow_group(i: int, alive: np.ndarray, near: NearFinder, boxes: Tensor, cut: Tensor, ios_thr: float) -> list[int]:
    """Detection ``i``'s group: it absorbs every alive detection it covers or that covers it; see merge_detections.

    Args:
        alive: bool [N], the detections not yet kept, merged or suppressed (the joined ones are cleared);
        boxes: float [N,4] of one class, score-descending; cut: bool [N].

    Returns:
        ``i`` first, then the joined indices in joining order.
    """
    members, box, partial = [i], boxes[i].clone(), bool(cut[i])
    while True:  # until nothing more joins
        cand = near(box, alive)
        if not partial:  # the group holds an uncut detection: only cut ones may join
            cand = cand[cut[cand]]
        join = cand[_ios(box, boxes[cand]) >= ios_thr]
        if len(join) == 0:
            return members
        alive[join.numpy()] = False
        members += join.tolist()
        box = torch.cat(
            [
                torch.minimum(box[:2], boxes[join, :2].min(0).values),
                torch.maximum(box[2:], boxes[join, 2:].max(0).values),
            ]
        )
        partial = partial and bool(cut[join].all())


def _greedy_merge(boxes: Tensor, cut: Tensor, nms_thr: float, ios_thr: float) -> list[list[int]]:
    """Groups (kept index first) for boxes [N,4] of one class sorted by descending score; see merge_detections.

    Memory is linear in N: a kept detection is compared with the alive detections near it (1 x M overlaps),
    never all pairs at once (an N x N IoU matrix and its intermediates, ~36 bytes a pair: 30 GB for 29k boxes).
    """
    # with positive thresholds only boxes that overlap can join (ios) or be duplicates (IoU): search near ones
    prune = bool(ios_thr > 0 and nms_thr >= 0 and torch.isfinite(boxes).all())
    near = _near_finder(boxes, prune)
    alive = np.ones(len(boxes), dtype=bool)
    groups = []
    for i in range(len(boxes)):  # score order
        if not alive[i]:
            continue
        alive[i] = False
        groups.append(_grow_group(i, alive, near, boxes, cut, ios_thr))
        cand = near(boxes[i], alive)
        dup = box_iou(boxes[i : i + 1], boxes[cand])[0] > nms_thr  # plain duplicates of the kept detection (NMS)
        alive[cand[dup].numpy()] = False
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
    device = labels.device
    boxes, scores, labels, cut = boxes.cpu(), scores.cpu(), labels.cpu(), cut.cpu()  # a loop of small steps
    keep_all, groups_all = [], []
    for c in labels.unique().tolist():
        idx = torch.where(labels == c)[0]
        idx = idx[scores[idx].argsort(descending=True, stable=True)]
        for g in _greedy_merge(boxes[idx].float(), cut[idx], nms_thr, ios_thr):
            keep_all.append(int(idx[g[0]]))
            groups_all.append(idx[g].tolist())
    score_of = scores.tolist()
    order = sorted(range(len(keep_all)), key=lambda k: -score_of[keep_all[k]])
    keep = torch.tensor([keep_all[k] for k in order], dtype=torch.int64, device=device)
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
    """Concatenate per-tile detections shifted into image pixels, with their cut flags."""
    boxes, scores, labels, cut = [], [], [], []
    for p, win in zip(preds, windows):
        b = p["boxes"].float() + torch.tensor([win[0], win[1], win[0], win[1]], dtype=torch.float32)
        boxes.append(b)
        scores.append(p["scores"].float())
        labels.append(p["labels"].to(torch.int64))
        whole = win == (0, 0, int(image_hw[1]), int(image_hw[0]))
        cut.append(torch.zeros(len(b), dtype=torch.bool) if whole else cut_flags(b, win, image_hw, margin))
    return {
        "boxes": torch.cat(boxes),
        "scores": torch.cat(scores),
        "labels": torch.cat(labels),
        "cut": torch.cat(cut),
    }


# run(images, batch_size) -> per-image prediction dicts in each image's pixels (default: runner.predict_arrays)
CropRunner = Callable[[Sequence[np.ndarray], int], list[dict]]


MaskCrop = tuple[int, int, Tensor]  # x0, y0 in image pixels and bool [h,w]: a mask cut to its set pixels


def _mask_crops(masks: Tensor, window: Window) -> list[MaskCrop]:
    """Each of a tile's masks [N,h,w] cut to the rectangle of its set pixels, placed in image pixels.

    A copy, so the tile's masks (N x h x w bytes) can be freed; an empty mask gives a 0 x 0 crop.
    """
    m = masks.to(torch.bool)
    rows, cols = m.any(2), m.any(1)  # [N,h], [N,w]
    out = []
    for k in range(len(m)):
        ys, xs = torch.where(rows[k])[0], torch.where(cols[k])[0]
        if len(ys) == 0:
            out.append((int(window[0]), int(window[1]), m.new_zeros((0, 0))))
            continue
        y0, y1, x0, x1 = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
        out.append((int(window[0]) + x0, int(window[1]) + y0, m[k, y0:y1, x0:x1].clone()))
    return out


def _run_tiles(
    run: CropRunner, crops: Sequence[np.ndarray], windows: Sequence[Window], batch_size: int
) -> tuple[list[dict], list[MaskCrop] | None]:
    """Predict ``crops`` ``batch_size`` at a time; returns the per-tile dicts without ``masks`` and, for instance
    models, every detection's mask crop (in detection order), cut as each batch arrives: all tiles' masks at once
    were N x h x w bytes (29k detections on 640x640 tiles: 12 GB)."""
    preds, masks = [], None
    step = max(int(batch_size), 1)  # run() answers a batch_size < 1 itself
    for start in range(0, len(crops), step):
        for p, win in zip(run(crops[start : start + step], batch_size), windows[start : start + step]):
            if not preds and "masks" in p:
                masks = []
            if masks is not None:
                masks.extend(_mask_crops(p["masks"], win))
                p = {k: v for k, v in p.items() if k != "masks"}
            preds.append(p)
    return preds, masks


def _paste_masks(masks: Sequence[MaskCrop], groups: list[list[int]], image_hw: Sequence[int]) -> Tensor:
    """bool [K,H,W]: each kept detection's mask, the union of its group's mask crops pasted in place."""
    out = torch.zeros((len(groups), int(image_hw[0]), int(image_hw[1])), dtype=torch.bool)
    for k, group in enumerate(groups):
        for i in group:
            x0, y0, crop = masks[i]
            out[k, y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] |= crop
    return out


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
    preds, masks = _run_tiles(run, crops, windows, options.batch_size or batch_size)
    if preds and "sem_seg" in preds[0] and "boxes" not in preds[0]:
        return {"sem_seg": stitch_sem_seg([p["sem_seg"] for p in preds], windows, (h, w))}
    if options.whole_image:
        whole, whole_masks = _run_tiles(run, [image], [(0, 0, w, h)], 1)
        preds, windows = preds + whole, windows + [(0, 0, w, h)]
        if masks is not None:
            masks.extend(whole_masks)  # the whole-image pass of an instance model has masks too
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
    if masks is not None:
        out["masks"] = _paste_masks(masks, groups, (h, w))
    return out
