"""The boxes of a COCO json as a classification dataset: one crop (with a margin) per annotation."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch.utils.data

from detkit.data.datasets.coco import CocoDataset
from detkit.data.datasets.image_folder import ClassLabels, class_sample
from detkit.data.validate import DatasetError
from detkit.registry import DATASETS

__all__ = ["CocoCropsDataset", "crop_window"]


def crop_window(box: np.ndarray, margin: float, square: bool, h: int, w: int) -> tuple[int, int, int, int]:
    """Integer crop ``(x1, y1, x2, y2)`` of a box xyxy [4], grown by ``margin`` x its size on each side (and to a
    square around its centre when ``square``), clipped to an image of ``h`` x ``w``; at least 1 x 1 pixel."""
    x1, y1, x2, y2 = (float(v) for v in box)
    bw, bh = (x2 - x1) * (1 + 2 * margin), (y2 - y1) * (1 + 2 * margin)
    if square:
        bw = bh = max(bw, bh)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(np.floor(max(cx - bw / 2, 0))), int(np.floor(max(cy - bh / 2, 0)))
    right, bottom = int(np.ceil(min(cx + bw / 2, w))), int(np.ceil(min(cy + bh / 2, h)))
    return left, top, max(right, left + 1), max(bottom, top + 1)


class _BoxSource(CocoDataset):
    """The boxes' source: ``on_error: skip`` leaves out a bad box alone, not its image (each box is a sample)."""

    skip_whole_images = False


@DATASETS.register
class CocoCropsDataset(ClassLabels, torch.utils.data.Dataset):
    """One sample per (non-crowd) box of a COCO json: the image cropped around the box, labelled with its category.

    The json is loaded and checked by :class:`CocoDataset` (same checks, same ``on_error`` / ``skip_bad_images``
    rules, same image reading); its categories, sorted by id, are the classes (``class_names``,
    ``cat_id_to_label``, ``label_to_cat_id`` as in ``CocoDataset``), so a detection dataset trains a crop
    classifier with the same labels.

    Args:
        ann_file, img_dir: as for ``CocoDataset``. pipeline: transform specs or a callable, run on the crop.
        margin: context added on each side, as a fraction of the box's width / height (0.1 = 10%).
        square: grow the shorter side of the crop to a square around the box centre (a later resize keeps the
            object's aspect ratio); crops are clipped to the image.
        min_size: boxes narrower or lower than this (pixels) are left out.
        on_error, skip_bad_images, class_names: passed to ``CocoDataset``.

    Samples: see :func:`detkit.data.datasets.image_folder.class_sample`; ``image_id`` is the crop's index,
    ``crops[i]`` = ``(index into self.coco, box xyxy)``; ``None`` when the image fails to decode and that
    is skipped. Attributes: ``labels`` int64 [N], ``class_counts``, ``aspect_ratios`` (of the crops).
    """

    def __init__(
        self,
        ann_file: str | os.PathLike,
        img_dir: str | os.PathLike,
        pipeline: Sequence[dict] | Callable | None = None,
        margin: float = 0.1,
        square: bool = True,
        min_size: float = 2.0,
        on_error: str = "raise",
        skip_bad_images: bool = True,
        class_names: Sequence[str] | None = None,
    ):
        if margin < 0 or min_size < 0:
            raise DatasetError(f"CocoCropsDataset margin and min_size must be >= 0, got {margin}, {min_size}")
        self.coco = _BoxSource(
            ann_file, img_dir, on_error=on_error, skip_bad_images=skip_bad_images, class_names=class_names
        )
        self.ann_file, self.img_dir = self.coco.ann_file, self.coco.img_dir
        self.class_names = self.coco.class_names
        self.cat_id_to_label, self.label_to_cat_id = self.coco.cat_id_to_label, self.coco.label_to_cat_id
        self.margin, self.square, self.min_size = float(margin), bool(square), float(min_size)
        self.crops: list[tuple[int, np.ndarray]] = []  # (index into self.coco, box xyxy)
        labels, ratios = [], []
        for i in range(len(self.coco)):
            info = self.coco.get_ann_info(i)
            h, w = info["orig_size"]
            for box, label in zip(info["boxes"], info["labels"]):
                if min(box[2] - box[0], box[3] - box[1]) < max(self.min_size, 1e-6):
                    continue
                x1, y1, x2, y2 = crop_window(box, self.margin, self.square, h, w)
                self.crops.append((i, box))
                labels.append(int(label))
                ratios.append((y2 - y1) / (x2 - x1))
        if not self.crops:
            warnings.warn(f"{self.ann_file}: no box of at least {self.min_size} px to crop", stacklevel=2)
        self.labels = np.array(labels, dtype=np.int64)
        self.aspect_ratios = np.array(ratios, dtype=np.float32)  # h / w
        from detkit.data.transforms import as_pipeline  # lazy: transforms import this module's users

        self.pipeline = as_pipeline(pipeline)

    def __getitem__(self, i: int) -> dict | None:
        """Crop ``i`` after the pipeline (``None`` when its image fails to decode and that is skipped)."""
        index, box = self.crops[i]
        full = self.coco[index]  # the whole image, read and checked by CocoDataset
        if full is None:
            return None
        image = full["image"]
        x1, y1, x2, y2 = crop_window(box, self.margin, self.square, *image.shape[:2])
        sample = class_sample(np.ascontiguousarray(image[y1:y2, x1:x2]), int(self.labels[i]), i)
        return self.pipeline(sample) if self.pipeline is not None else sample
