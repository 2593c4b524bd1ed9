"""``TiledDataset``: train on large images through overlapping tiles at the training scale.

Each item is one tile of one image of the wrapped dataset (a spec dict or an instance, built without a
pipeline: the tile is cut from the image as stored). Boxes and masks are clipped to the tile; an object
that keeps less than ``min_visible`` of its area (mask pixels when masks exist, else box area) is
dropped. The tiles then go through this dataset's own ``pipeline``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch.utils.data

from detkit.data.datasets.inner import inner_dataset_config
from detkit.data.problems import DatasetError
from detkit.ops.tiling import tile_windows
from detkit.registry import DATASETS

__all__ = ["TiledDataset", "crop_sample"]


def crop_sample(sample: dict, window: Sequence[int], min_visible: float = 0.5, min_size: float = 2.0) -> dict:
    """Cut ``window`` ``(x0, y0, x1, y1)`` out of a sample: image, boxes, labels, masks, sem_seg.

    Boxes are clipped to the window and shifted; an instance keeps its place only when the share of it
    inside the window is >= ``min_visible`` and its clipped box is wider and taller than ``min_size``.
    ``orig_size`` becomes the tile size (predictions on a tile are in tile pixels); ``tile`` records the
    window in the source image.
    """
    x0, y0, x1, y1 = (int(v) for v in window)
    out = dict(sample)
    out["image"] = np.ascontiguousarray(sample["image"][y0:y1, x0:x1])
    boxes = np.asarray(sample.get("boxes", np.zeros((0, 4))), np.float32).reshape(-1, 4)
    clipped = boxes.copy()
    clipped[:, 0::2] = clipped[:, 0::2].clip(x0, x1) - x0
    clipped[:, 1::2] = clipped[:, 1::2].clip(y0, y1) - y0
    wh = clipped[:, 2:] - clipped[:, :2]
    masks = sample.get("masks")
    if masks is not None and len(masks):
        masks = np.asarray(masks)
        inside = masks[:, y0:y1, x0:x1]
        total = masks.reshape(len(masks), -1).sum(1, dtype=np.int64)
        share = inside.reshape(len(masks), -1).sum(1, dtype=np.int64) / np.maximum(total, 1)
    else:
        area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
        share = np.prod(wh, axis=1) / np.maximum(area, 1e-6)
    keep = (share >= min_visible) & (wh > min_size).all(1)
    out["boxes"] = clipped[keep]
    if "labels" in sample:
        out["labels"] = np.asarray(sample["labels"])[keep]
    if masks is not None:
        out["masks"] = np.ascontiguousarray(np.asarray(masks)[keep][:, y0:y1, x0:x1])
    for key in ("iscrowd", "areas"):
        if sample.get(key) is not None and len(sample[key]) == len(keep):
            out[key] = np.asarray(sample[key])[keep]
    if sample.get("sem_seg") is not None:
        out["sem_seg"] = np.ascontiguousarray(np.asarray(sample["sem_seg"])[y0:y1, x0:x1])
    out["orig_size"] = (y1 - y0, x1 - x0)
    out["tile"] = (x0, y0, x1, y1)
    return out


def _checked_tiling(tile_size: Any, overlap: Any) -> tuple[tuple[int, int], float]:
    """``(tile (h, w), overlap)`` checked as tiled inference checks them; a DatasetError naming the key."""
    from detkit.inference.tile_options import check_overlap, check_tile_size

    try:
        size = check_tile_size(tile_size, "TiledDataset: tile_size")
        return size, check_overlap(overlap, "TiledDataset: overlap", size)
    except ValueError as e:
        raise DatasetError(str(e)) from None


@DATASETS.register
class TiledDataset(torch.utils.data.Dataset):
    """Overlapping tiles of the images of another dataset, as a map-style dataset of sample dicts.

    Args:
        dataset: the source dataset, an instance or a spec dict (``{type: CocoDataset, ...}``; its
            ``pipeline`` should only hold what must run before cutting, usually nothing).
        tile_size: tile ``(h, w)`` (an int: square), whole source-image pixels >= 32 (as ``infer --tile``).
        overlap: overlap of neighbouring tiles, a fraction of the tile size in [0, 1) (64 px of 320: 0.2).
        min_visible: minimum share of an object inside a tile for it to stay a target there.
        min_size: minimum width and height (pixels) of a clipped box.
        keep_empty: keep tiles without any object (False needs ``dataset.get_ann_info`` to plan them).
        pipeline: transform specs (or a callable) applied to each tile.
        on_error: set in the source dataset's config (``data.train.on_error`` works as for a plain dataset).

    Bad records: the source dataset's ``on_error`` decides (raise, or leave them out and count them in
    ``skipped``, which reads through). An image the source skips gives no tile when the tiles are planned
    from the samples, else ``None`` for its tiles.

    Image sizes come from ``dataset.get_ann_info(i)['orig_size']`` when available (no image read),
    else from reading each sample once at construction. A wrong ``tile_size`` / ``overlap`` is a
    ``DatasetError`` naming the key and the valid range.

    Reading: each tile decodes its source image, except that the last decoded image is kept (per worker),
    so tiles read in order (validation, ``detkit check``) decode each image once; give the source dataset
    ``cache: ram | disk`` for shuffled training (docs/inference.md, "Training on large images").

    As ``data.val`` a TiledDataset is evaluated as SAHI does (``detkit.engine.evaluate``): each source image
    is predicted tile by tile (``detkit.inference.tiling.predict_tiled``, the tiles through ``pipeline``),
    the detections merged, and scored on the whole image (``coco`` / ``ann_file`` read through).
    """

    def __init__(
        self,
        dataset: Any,
        tile_size: int | Sequence[int] = 640,
        overlap: float = 0.2,
        min_visible: float = 0.5,
        min_size: float = 2.0,
        keep_empty: bool = True,
        pipeline: Sequence[dict] | Callable | None = None,
        on_error: str | None = None,
    ):
        tile_size, overlap = _checked_tiling(tile_size, overlap)  # first: a wrong tile costs no annotation read
        dataset = inner_dataset_config(dataset, "TiledDataset", on_error=on_error)
        if isinstance(dataset, dict):
            from detkit.data.build import build_dataset

            dataset = build_dataset(copy.deepcopy(dataset))
        self.tile_size, self.overlap = tile_size, overlap
        if not 0.0 < min_visible <= 1.0:
            raise DatasetError(f"TiledDataset: min_visible must be in (0, 1], got {min_visible}")
        self.dataset = dataset
        self.min_visible, self.min_size = float(min_visible), float(min_size)
        self._last: tuple[int, dict] | None = None  # (source index, sample): the image the last tile came from
        if not keep_empty and not callable(getattr(dataset, "get_ann_info", None)):
            raise ValueError(
                "TiledDataset(keep_empty=False) needs a dataset with get_ann_info(i) to find the tiles holding objects"
            )
        self.tiles: list[tuple[int, tuple[int, int, int, int]]] = []
        for i in range(len(dataset)):
            info = self._info(i)
            if info is None:  # the source skipped it (and warned): no tile
                continue
            h, w = info["orig_size"]
            for win in tile_windows(int(h), int(w), self.tile_size, self.overlap):
                if keep_empty or self._has_objects(info, win):
                    self.tiles.append((i, win))
        self.aspect_ratios = np.array([(y1 - y0) / (x1 - x0) for _, (x0, y0, x1, y1) in self.tiles], np.float32)
        if pipeline is not None and not callable(pipeline):
            from detkit.data.transforms import build_transforms

            pipeline = build_transforms(list(pipeline))
        self.pipeline = pipeline

    def _info(self, i: int) -> dict | None:
        if callable(getattr(self.dataset, "get_ann_info", None)):
            return self.dataset.get_ann_info(i)
        sample = self.dataset[i]
        if sample is None:
            return None
        return {"orig_size": sample["image"].shape[:2], "boxes": sample.get("boxes", np.zeros((0, 4)))}

    def _has_objects(self, info: dict, win: tuple[int, int, int, int]) -> bool:
        probe = {
            "image": np.zeros((int(info["orig_size"][0]), int(info["orig_size"][1]), 0), np.uint8),
            "boxes": info["boxes"],
        }
        return len(crop_sample(probe, win, self.min_visible, self.min_size)["boxes"]) > 0

    def __getattr__(self, name: str) -> Any:
        """Class names and category maps of the source dataset (``class_names``, ``cat_ids``, ...)."""
        if name in (
            "class_names",
            "num_classes",
            "cat_ids",
            "cat_id_to_label",
            "label_to_cat_id",
            "with_masks",
            "with_sem_seg",
            "sem_background",
            "on_error",
            "skipped",
            "coco",  # the ground truth of tiled evaluation: the source images, whole
            "ann_file",
        ):
            dataset = self.__dict__.get("dataset")
            if dataset is not None:
                return getattr(dataset, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __len__(self) -> int:
        return len(self.tiles)

    def _source(self, i: int) -> dict | None:
        """Source sample ``i``, decoded once for consecutive tiles of one image (tiles read in order: validation,
        checks, a sequential sampler); each DataLoader worker keeps its own last image."""
        if self._last is not None and self._last[0] == i:
            return self._last[1]
        sample = self.dataset[i]
        self._last = None if sample is None else (i, sample)
        return sample

    def __getitem__(self, index: int) -> dict | None:
        """Tile ``index`` after the pipeline, or None when the source image fails to decode."""
        i, win = self.tiles[index]
        sample = self._source(i)
        if sample is None:
            return None
        tile = crop_sample(sample, win, self.min_visible, self.min_size)
        return self.pipeline(tile) if self.pipeline is not None else tile
