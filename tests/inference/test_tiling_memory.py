"""Tiled inference on very large images: the merge never builds an N x N matrix, masks stay crops until the end.

Both give exactly what the former code gave; its functions are copied here as the reference.
"""

import zlib

import numpy as np
import pytest
import torch
from torchvision.ops import box_area, box_iou

import detkit.inference.tiling as tiling
from detkit.inference.tiling import TileOptions, cut_flags, merge_detections, predict_tiled, tile_windows

# ---- the former implementation (detkit 'tiling.py' before the linear-memory merge), kept as the reference ----


def _ref_ios(box, boxes):
    lt = torch.maximum(box[:2], boxes[:, :2])
    rb = torch.minimum(box[2:], boxes[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area = box_area(box[None])[0]
    return inter / torch.minimum(area, box_area(boxes)).clamp(min=1e-6)


def _ref_greedy_merge(boxes, cut, nms_thr, ios_thr):
    dup = box_iou(boxes, boxes) > nms_thr
    taken = torch.zeros(len(boxes), dtype=torch.bool)
    groups = []
    for i in range(len(boxes)):
        if taken[i]:
            continue
        taken[i] = True
        members, box, partial = [i], boxes[i].clone(), bool(cut[i])
        while True:
            cand = torch.where(~taken)[0]
            if len(cand) == 0:
                break
            join = cand[(_ref_ios(box, boxes[cand]) >= ios_thr) & (cut[cand] | partial)]
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
        taken |= dup[i]
        groups.append(members)
    return groups


def _ref_merge_detections(boxes, scores, labels, cut, nms_thr=0.5, ios_thr=0.5):
    keep_all, groups_all = [], []
    for c in labels.unique().tolist():
        idx = torch.where(labels == c)[0]
        idx = idx[scores[idx].argsort(descending=True, stable=True)]
        for g in _ref_greedy_merge(boxes[idx].float(), cut[idx], nms_thr, ios_thr):
            keep_all.append(int(idx[g[0]]))
            groups_all.append(idx[g].tolist())
    order = sorted(range(len(keep_all)), key=lambda k: -float(scores[keep_all[k]]))
    keep = torch.tensor([keep_all[k] for k in order], dtype=torch.int64)
    return keep, [groups_all[k] for k in order]


def _ref_paste_masks(preds, windows, tile, groups, image_hw):
    offsets = np.cumsum([0] + [len(p["boxes"]) for p in preds])
    out = torch.zeros((len(groups), int(image_hw[0]), int(image_hw[1])), dtype=torch.bool)
    for k, group in enumerate(groups):
        for i in group:
            t = int(tile[i])
            x0, y0, x1, y1 = windows[t]
            out[k, y0:y1, x0:x1] |= preds[t]["masks"][i - offsets[t]].to(torch.bool)
    return out


# ---- inputs ----


def _crowded(seed, n=240, classes=3, extent=300):
    """Crowded detections: clusters of jittered copies (duplicates, cut pieces, exact ties in box and score)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(n // 8, 2, generator=g) * extent
    pick = torch.randint(0, len(centres), (n,), generator=g)
    xy = centres[pick] + torch.randint(-12, 13, (n, 2), generator=g).float()
    wh = torch.randint(0, 60, (n, 2), generator=g).float()  # some zero-width or zero-height boxes
    boxes = torch.cat([xy, xy + wh], 1)
    boxes[n // 2 : n // 2 + 10] = boxes[n // 2 - 10 : n // 2]  # exact duplicates
    boxes[::37, 2] += 200  # a few wide boxes reach far from their x0
    if seed % 3 == 2:
        boxes[5] = torch.tensor([-float("inf"), 0.0, float("inf"), 40.0])  # unbounded: every pair is compared
    scores = (torch.rand(n, generator=g) * 20).round() / 20  # many equal scores: the order of ties matters
    labels = torch.randint(0, classes, (n,), generator=g)
    cut = torch.rand(n, generator=g) < 0.4
    return boxes, scores, labels, cut


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("nms_thr,ios_thr", [(0.5, 0.5), (0.3, 0.2), (0.7, 0.8), (0.0, 0.0), (1.0, 1.0)])
def test_merge_gives_exactly_what_the_former_algorithm_gave(seed, nms_thr, ios_thr):
    boxes, scores, labels, cut = _crowded(seed)
    keep, groups = merge_detections(boxes, scores, labels, cut, nms_thr=nms_thr, ios_thr=ios_thr)
    ref_keep, ref_groups = _ref_merge_detections(boxes, scores, labels, cut, nms_thr, ios_thr)
    assert torch.equal(keep, ref_keep)
    assert groups == ref_groups  # same members in the same order: same merged boxes and masks
    assert any(len(g) > 1 for g in groups) or nms_thr == 1.0 or ios_thr == 1.0


def test_merge_compares_a_kept_detection_with_the_others_never_all_pairs(monkeypatch):
    """30k detections made a 29k x 29k IoU matrix (5.8 GB); now each comparison is one box against M <= N."""
    n = 1600
    boxes, scores, labels, cut = _crowded(0, n=n, classes=1, extent=1600)
    largest = []

    def spy(fn):
        def wrapped(a, b):
            largest.append((len(a) if a.dim() > 1 else 1) * len(b))
            return fn(a, b)

        return wrapped

    monkeypatch.setattr(tiling, "box_iou", spy(box_iou))
    monkeypatch.setattr(tiling, "_ios", spy(tiling._ios))
    keep, groups = merge_detections(boxes, scores, labels, cut)
    assert largest and max(largest) <= n  # the former merge asked box_iou for n * n overlaps at once
    assert 0 < len(keep) < n and sum(map(len, groups)) > len(keep)


# ---- masks: cropped as each batch of tiles arrives, pasted only for the kept detections ----


def _random_runner(calls):
    """run(crops, batch_size): per tile, random boxes and uint8 masks seeded by the tile's pixels (the same tile
    gives the same detections however the tiles are batched); some masks are empty, some spill out of their box."""

    def run(crops, batch_size):
        calls.append(len(crops))
        out = []
        for crop in crops:
            g = torch.Generator().manual_seed(zlib.crc32(np.ascontiguousarray(crop).tobytes()))
            h, w = crop.shape[:2]
            n = int(torch.randint(0, 12, (1,), generator=g))
            xy = torch.rand(n, 2, generator=g) * torch.tensor([w - 8.0, h - 8.0])
            boxes = torch.cat([xy, xy + 4 + torch.rand(n, 2, generator=g) * 60], 1).floor()
            boxes = torch.minimum(boxes, torch.tensor([w, h, w, h], dtype=torch.float32))
            masks = torch.zeros((n, h, w), dtype=torch.uint8)
            for k, (x0, y0, x1, y1) in enumerate(boxes.int().tolist()):
                if k % 5 != 4:  # every fifth mask stays empty
                    masks[k, max(y0 - 2, 0) : y1, x0 : x1 + 3] = 1
            scores = (torch.rand(n, generator=g) * 10).round() / 10
            labels = torch.randint(0, 2, (n,), generator=g)
            out.append({"boxes": boxes, "scores": scores, "labels": labels, "masks": masks})
        return out

    return run


def _former_predict_tiled(image, options, run):
    """The former predict_tiled with a ``run``: every tile's full masks held, then pasted."""
    h, w = image.shape[:2]
    windows = tile_windows(h, w, options.size, options.overlap)
    preds = run([image[y0:y1, x0:x1] for x0, y0, x1, y1 in windows], options.batch_size)
    if options.whole_image:
        preds, windows = preds + run([image], 1), windows + [(0, 0, w, h)]
    boxes, scores, labels, cut, tile = [], [], [], [], []
    for t, (p, win) in enumerate(zip(preds, windows)):
        b = p["boxes"].float() + torch.tensor([win[0], win[1], win[0], win[1]], dtype=torch.float32)
        boxes.append(b)
        scores.append(p["scores"].float())
        labels.append(p["labels"])
        whole = win == (0, 0, w, h)
        cut.append(torch.zeros(len(b), dtype=torch.bool) if whole else cut_flags(b, win, (h, w), options.edge_margin))
        tile.append(torch.full((len(b),), t, dtype=torch.int64))
    boxes, scores, labels, cut, tile = map(torch.cat, (boxes, scores, labels, cut, tile))
    keep, groups = _ref_merge_detections(boxes, scores, labels, cut, options.nms_thr, options.ios_thr)
    keep, groups = keep[: options.max_per_img], groups[: options.max_per_img]
    merged = torch.stack([torch.cat([boxes[g, :2].min(0).values, boxes[g, 2:].max(0).values]) for g in groups])
    masks = _ref_paste_masks(preds, windows, tile, groups, (h, w))
    return {"boxes": merged, "scores": scores[keep], "labels": labels[keep], "masks": masks}


@pytest.mark.parametrize("whole_image", [False, True])
def test_tiled_masks_are_what_the_former_paste_gave_and_tiles_run_batch_by_batch(whole_image):
    image = np.random.default_rng(0).integers(0, 255, (300, 420, 3), dtype=np.uint8)
    options = TileOptions(size=(128, 128), overlap=0.25, whole_image=whole_image, max_per_img=40, batch_size=3)
    calls, ref_calls = [], []
    got = predict_tiled(None, image, options, run=_random_runner(calls))
    ref = _former_predict_tiled(image, options, _random_runner(ref_calls))
    assert set(got) == set(ref) and len(ref["boxes"]) == 40
    for key in ref:
        assert torch.equal(got[key], ref[key]), key
    assert got["masks"].dtype == torch.bool and got["masks"].any((1, 2)).sum() > 20
    n_tiles = len(tile_windows(300, 420, (128, 128), 0.25))
    # one batch of tiles at a time: only one batch's full-size masks exist at once (the former code asked run
    # for all tiles in one call and held every tile's masks until the end)
    assert calls == [3] * (n_tiles // 3) + [n_tiles % 3] * (n_tiles % 3 > 0) + [1] * whole_image


def test_mask_crops_hold_only_the_set_pixels():
    masks = torch.zeros((3, 64, 80), dtype=torch.uint8)
    masks[0, 10:20, 30:35] = 1
    masks[1, 0, 79] = 7
    crops = tiling._mask_crops(masks, (100, 200, 180, 264))
    assert [(x, y, tuple(c.shape)) for x, y, c in crops] == [
        (130, 210, (10, 5)),
        (179, 200, (1, 1)),
        (100, 200, (0, 0)),
    ]
    assert crops[0][2].all() and crops[0][2].dtype == torch.bool
    # a copy, not a view that would keep the tile's 64x80 masks alive
    assert all(c.untyped_storage().nbytes() == c.numel() for _, _, c in crops)
