"""Tiled inference with a deterministic fake detector: objects found, shifted back, duplicates merged."""

import cv2
import numpy as np
import pytest
import torch
from torch import nn

import detkit
from detkit.inference.tiling import TileOptions, merge_detections, parse_tile, stitch_sem_seg, tile_windows


class BlobDetector(nn.Module):
    """A box (and mask) at each bright blob of each image, class 0 for squares, 1 for wide blobs.

    It sees only what it is given (the padded batch, cropped to each image's size), so every box it
    returns is in tile pixels and must be shifted back by the tiling code. ``max_input`` mimics a
    network whose test resize makes small objects vanish: larger inputs give no detections.
    """

    def __init__(self, with_masks=False, max_input=None):
        super().__init__()
        self.with_masks, self.max_input = with_masks, max_input
        self.batch_sizes = []

    def predict(self, batch, score_thr=None):
        self.batch_sizes.append(len(batch["image_sizes"]))
        out = []
        for img, (h, w) in zip(batch["images"], batch["image_sizes"]):
            gray = img[:, :h, :w].float().mean(0).numpy()
            if self.max_input is not None and max(h, w) > self.max_input:
                gray = np.zeros_like(gray)
            n, lab, stats, _ = cv2.connectedComponentsWithStats((gray > 200).astype(np.uint8), connectivity=4)
            boxes = [[x, y, x + bw, y + bh] for x, y, bw, bh, _ in stats[1:]]
            labels = [0 if abs(bw - bh) <= 2 else 1 for _, _, bw, bh, _ in stats[1:]]
            r = {
                "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                "scores": torch.linspace(0.9, 0.8, len(boxes)),
                "labels": torch.tensor(labels, dtype=torch.int64),
            }
            if self.with_masks:
                r["masks"] = torch.from_numpy(np.stack([lab == k for k in range(n)])[1:])
            out.append(r)
        return out


class ThresholdSegmentor(nn.Module):
    """A segmentor that labels each pixel by its brightness: 0 dark, 1 mid, 2 bright."""

    def predict(self, batch, score_thr=None):
        out = []
        for img, (h, w) in zip(batch["images"], batch["image_sizes"]):
            g = img[:, :h, :w].float().mean(0)
            out.append({"sem_seg": (g > 80).long() + (g > 200).long()})
        return out


def _canvas(h=400, w=600, squares=(), rects=()):
    img = np.full((h, w, 3), 30, np.uint8)
    for x, y, s in squares:
        img[y : y + s, x : x + s] = 255
    for x0, y0, x1, y1 in rects:
        img[y0:y1, x0:x1] = 255
    return img


def _sorted(boxes):
    b = boxes.tolist()
    return sorted(tuple(round(v, 3) for v in r) for r in b)


def test_windows_cover_the_image():
    wins = tile_windows(400, 600, (256, 256), 0.25)
    assert all(x1 - x0 == 256 and y1 - y0 == 256 for x0, y0, x1, y1 in wins)
    assert max(w[2] for w in wins) == 600 and max(w[3] for w in wins) == 400
    cover = np.zeros((400, 600), bool)
    for x0, y0, x1, y1 in wins:
        cover[y0:y1, x0:x1] = True
    assert cover.all()
    assert tile_windows(100, 80, (256, 256), 0.2) == [(0, 0, 80, 100)]  # never larger than the image
    assert parse_tile("320,480", overlap=0.1) == TileOptions(size=(320, 480), overlap=0.1)
    assert parse_tile({"size": 64, "whole_image": True}).whole_image
    with pytest.raises(ValueError, match="unknown tile option"):
        parse_tile({"size": 64, "overlaps": 0.2})
    with pytest.raises(ValueError, match="'max_det' is an old spelling: write 'max_per_img'"):
        parse_tile({"size": 64, "max_det": 100})
    with pytest.raises(ValueError, match="'nms_thresh' is an old spelling: write 'nms_thr'"):
        parse_tile({"size": 64, "nms_thresh": 0.5})
    with pytest.raises(ValueError, match="overlap"):
        TileOptions(size=64, overlap=1.0)
    with pytest.raises(ValueError, match="at least 32 px"):
        parse_tile("1,1")  # 540,000 windows of a 900x600 image: refused, not run for minutes


def test_objects_found_shifted_back_and_merged():
    # tiles of 200 px with a 50 px overlap: origins 0, 150, 300, 400 along x, 0, 150, 200 along y
    squares = [(20, 30, 20), (160, 160, 24), (175, 40, 16), (560, 360, 30), (420, 170, 18)]
    img = _canvas(squares=squares)
    model = BlobDetector()
    pred = detkit.predict(model, img, tile={"size": (200, 200), "overlap": 0.25}, batch_size=4)
    expected = sorted((float(x), float(y), float(x + s), float(y + s)) for x, y, s in squares)
    assert _sorted(pred["boxes"]) == expected  # one box per object, in image pixels: no duplicates
    assert (pred["labels"] == 0).all()
    n_tiles = len(tile_windows(400, 600, (200, 200), 0.25))
    assert sum(model.batch_sizes) == n_tiles and max(model.batch_sizes) == 4  # tiles run in batches
    # the square at (160,160) lies in the overlap of four tiles: without merging it appears several times
    raw = merge_detections(
        torch.tensor([[160.0, 160, 184, 184]] * 4),
        torch.tensor([0.9, 0.8, 0.7, 0.6]),
        torch.zeros(4, dtype=torch.int64),
    )[0]
    assert len(raw) == 1


def test_objects_cut_by_tile_edges_are_merged_into_one_box():
    # a 90x20 bar crosses the tile edges; the overlap (20 px) is too small for any tile to hold it whole
    img = _canvas(h=200, w=300, rects=[(60, 90, 150, 110)])
    opts = {"size": (100, 100), "overlap": 0.2}
    merged = detkit.predict(BlobDetector(with_masks=True), img, tile=opts)
    assert _sorted(merged["boxes"]) == [(60.0, 90.0, 150.0, 110.0)]
    assert merged["masks"].shape == (1, 200, 300)
    assert torch.equal(merged["masks"][0], torch.from_numpy(img[:, :, 0] == 255))  # masks shifted and joined
    pieces = detkit.predict(BlobDetector(), img, tile={**opts, "merge_edges": False})
    assert len(pieces["boxes"]) > 1  # plain NMS keeps the pieces


def test_whole_image_pass_and_score_order():
    img = _canvas(squares=[(100, 100, 20)], rects=[(250, 50, 550, 60)])
    # a "network" blind on large inputs: only the tiles see objects
    blind = BlobDetector(max_input=300)
    assert len(detkit.predict(blind, img)["boxes"]) == 0
    tiled = detkit.predict(blind, img, tile=(256, 256))
    assert (100.0, 100.0, 120.0, 120.0) in _sorted(tiled["boxes"])
    # a whole-image pass adds what the tiles cannot give: here the full 300 px bar with label 1
    both = detkit.predict(BlobDetector(), img, tile={"size": (256, 256), "whole_image": True})
    assert (250.0, 50.0, 550.0, 60.0) in _sorted(both["boxes"])
    assert len(both["boxes"]) == 2
    assert (both["scores"][:-1] >= both["scores"][1:]).all()


def test_merge_rules():
    boxes = torch.tensor(
        [
            [0.0, 0, 100, 100],  # complete object
            [0.0, 0, 40, 100],  # a piece of it, cut by a tile edge at x=40
            [200.0, 0, 260, 50],  # left piece of a long object, cut at x=260
            [240.0, 0, 300, 50],  # right piece, cut at x=240
            [0.0, 0, 40, 100],
        ]
    )  # same piece but another class: kept
    scores = torch.tensor([0.7, 0.9, 0.8, 0.6, 0.5])
    labels = torch.tensor([0, 0, 0, 0, 1])
    cut = torch.tensor([False, True, True, True, True])
    keep, groups = merge_detections(boxes, scores, labels, cut, nms_thr=0.5, ios_thr=0.3)
    kept = {int(k): g for k, g in zip(keep, groups)}
    assert set(kept) == {1, 2, 4}
    assert sorted(kept[1]) == [0, 1] and sorted(kept[2]) == [2, 3]
    plain, _ = merge_detections(boxes, scores, labels, cut, merge_edges=False)
    assert len(plain) == 5  # IoU of the pieces is below 0.5: NMS alone keeps them all


def test_tiled_semantic_segmentation_is_stitched():
    rng = np.random.default_rng(0)
    img = cv2.resize(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8), (300, 200), interpolation=cv2.INTER_NEAREST)
    model = ThresholdSegmentor()
    whole = detkit.predict(model, img)["sem_seg"]
    tiled = detkit.predict(model, img, tile={"size": (96, 128), "overlap": 0.3})["sem_seg"]
    assert tiled.shape == (200, 300) and torch.equal(tiled, whole)
    windows = tile_windows(200, 300, (96, 128), 0.3)
    maps = [torch.full((y1 - y0, x1 - x0), i) for i, (x0, y0, x1, y1) in enumerate(windows)]
    stitched = stitch_sem_seg(maps, windows, (200, 300))
    assert (stitched != 255).all() and len(stitched.unique()) == len(windows)  # every tile contributes
