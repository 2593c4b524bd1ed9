"""Draw a dataset's ground truth (boxes, masks, semantic maps), raw or after its pipeline, to check data and
augmentation; one image per sample or a single contact sheet."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from typing import Any

import cv2
import numpy as np

__all__ = ["build_browse_dataset", "contact_sheet", "draw_sample", "iter_drawn"]


def build_browse_dataset(cfg: dict, split: str = "train", raw: bool = False) -> Any:
    """Build ``cfg['data'][split]`` with ``detkit.data.build.build_dataset``; ``raw`` drops the pipeline."""
    from detkit.data.build import build_dataset

    data = cfg.get("data") or {}
    if split not in data or not isinstance(data[split], dict):
        raise KeyError(f"the config has no data.{split} section (found: {', '.join(sorted(data)) or 'none'})")
    spec = copy.deepcopy(data[split])
    if raw:
        spec["pipeline"] = None
    return build_dataset(spec)


def draw_sample(
    sample: dict, class_names: Sequence[str] | None = None, ignore_index: int = 255, sem_background: bool = False
) -> np.ndarray:
    """RGB uint8 [H,W,3]: the sample's semantic map (if any) blended in, then its boxes, labels and masks; a
    classification sample (a label, no boxes) enlarged as ``infer`` draws classes, with its class in the corner.

    With ``sem_background`` the semantic class 0 (background) is left unpainted, like ignored pixels.
    """
    from detkit.inference.classification import enlarged
    from detkit.visualization import draw_instances, draw_legend, draw_sem_seg

    image = np.ascontiguousarray(sample["image"])
    if "boxes" not in sample and sample.get("sem_seg") is None and sample.get("labels") is not None:
        return draw_legend(
            enlarged(image), [int(k) for k in np.asarray(sample["labels"]).reshape(-1)], class_names or []
        )
    if sample.get("sem_seg") is not None:
        sem = np.asarray(sample["sem_seg"]).astype(np.int64)
        if sem_background:
            sem = np.where(sem == 0, ignore_index, sem)
        image = draw_sem_seg(image, sem, alpha=0.4, ignore_index=ignore_index)
    boxes = np.asarray(sample.get("boxes", np.zeros((0, 4))), np.float32).reshape(-1, 4)
    labels = np.asarray(sample.get("labels", np.zeros(0)), np.int64).reshape(-1)
    masks = sample.get("masks")
    masks = None if masks is None or len(masks) == 0 else np.asarray(masks).astype(bool)
    return draw_instances(image, boxes, labels, None, masks, class_names)


def iter_drawn(dataset: Any, indices: Sequence[int], seed: int = 0) -> Iterator[tuple[int, Any, np.ndarray]]:
    """Yield ``(index, image_id, drawn RGB image)``; random transforms are seeded by ``(seed, 0, index)``
    as the training loader seeds them (epoch 0), so a run is reproducible. Undecodable images are skipped."""
    from detkit.data.build import SeededDataset

    seeded = SeededDataset(dataset, seed)
    names = getattr(dataset, "class_names", None)
    for i in indices:
        sample = seeded[(int(i), 0)]
        if sample is None:
            continue
        yield (
            int(i),
            sample.get("image_id", i),
            draw_sample(sample, names, sem_background=bool(getattr(dataset, "sem_background", False))),
        )


def contact_sheet(images: Sequence[tuple[str, np.ndarray]], cell: int = 256, cols: int | None = None) -> np.ndarray:
    """Tile ``(caption, RGB image)`` pairs into one RGB image, each fitted (aspect kept) into ``cell`` px."""
    if not images:
        raise ValueError("contact_sheet: no images")
    cols = cols or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    cap = 18
    sheet = np.full((rows * (cell + cap), cols * cell, 3), 255, np.uint8)
    for k, (caption, img) in enumerate(images):
        r, c = divmod(k, cols)
        h, w = img.shape[:2]
        s = cell / max(h, w)
        small = cv2.resize(
            img,
            (max(1, round(w * s)), max(1, round(h * s))),
            interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
        )
        y0, x0 = r * (cell + cap) + cap, c * cell
        sheet[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
        cv2.putText(sheet, caption, (x0 + 3, y0 - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return sheet
