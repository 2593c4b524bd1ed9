"""Per-image errors (from the confusion matrix's matching) and drawings of the worst and best images."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from detkit.analysis.confusion import ConfusionResult, ImageMatch
from detkit.analysis.figures import write_csv
from detkit.utils.files import atomic_write

__all__ = [
    "draw_image_pair",
    "draw_ranked_images",
    "drawing_name",
    "planned_drawings",
    "rank_images",
    "worst_and_best",
    "write_per_image_csv",
]


def rank_images(cm: ConfusionResult) -> list[ImageMatch]:
    """Images sorted worst first: most errors (missed or mislabelled ground truths + wrong predictions),
    then most ground truths; images with neither ground truth nor prediction are left out."""
    imgs = [m for m in cm.images if m.gts or len(m.dets) > len(m.ignored)]
    return sorted(imgs, key=lambda m: (-m.errors, -len(m.gts), m.image_id))


def worst_and_best(ranked: list[ImageMatch], num: int) -> dict[str, list[ImageMatch]]:
    """The images of ``worst/`` and ``best/`` from :func:`rank_images`' order, never the same image in both.

    ``worst``: up to ``num`` images with errors, most first, and with fewer than ``2 * num`` images at most half
    of them (rounded up), so that 4 images give 2 and 2, not the same 4 twice; ``best``: up to ``num`` of the
    other images with ground truths, fewest errors first.
    """
    cap = num if len(ranked) >= 2 * num else (len(ranked) + 1) // 2
    worst = [m for m in ranked if m.errors][:cap]
    taken = {m.image_id for m in worst}
    rest = [m for m in ranked if m.gts and m.image_id not in taken]
    best = sorted(rest, key=lambda m: (m.errors, -len(m.gts), m.image_id))[:num]
    return {"worst": worst, "best": best}


def write_per_image_csv(cm: ConfusionResult, coco_gt: Any, path: str | os.PathLike) -> Path:
    """CSV, worst image first: image id, file name, ground truths, predictions (>= score_thr), TP, FP, FN, errors."""
    rows = []
    for m in rank_images(cm):
        counted = len(m.dets) - len(m.ignored)
        rows.append(
            (
                m.image_id,
                coco_gt.imgs[m.image_id].get("file_name", ""),
                len(m.gts),
                counted,
                m.tp,
                counted - m.tp,
                len(m.gts) - m.tp,
                m.errors,
            )
        )
    return write_csv(path, ("image_id", "file_name", "num_gt", "num_pred", "tp", "fp", "fn", "errors"), rows)


def _boxes_xyxy(records: Sequence[dict]) -> np.ndarray:
    boxes = []
    for r in records:
        b = r.get("bbox")
        if b is None:  # a segm result without its box
            b = mask_utils.toBbox(r["segmentation"]).tolist()
        boxes.append([b[0], b[1], b[0] + b[2], b[1] + b[3]])
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def _masks(records: Sequence[dict], coco_gt: Any, h: int, w: int, is_gt: bool) -> np.ndarray:
    out = np.zeros((len(records), h, w), bool)
    for k, r in enumerate(records):
        m = coco_gt.annToMask(r) if is_gt else mask_utils.decode(r["segmentation"])
        if m.shape == (h, w):
            out[k] = m.astype(bool)
    return out


def draw_image_pair(
    image: np.ndarray,
    m: ImageMatch,
    coco_gt: Any,
    class_names: Sequence[str],
    category_ids: Sequence[int],
    iou_type: str = "bbox",
    min_size: int = 384,
) -> np.ndarray:
    """Ground truth (left) and predictions >= the score threshold (right) side by side, RGB uint8.

    Images smaller than ``min_size`` (short side) are enlarged first, so labels stay readable.
    """
    from detkit.visualization import draw_instances

    label = {c: i for i, c in enumerate(category_ids)}
    h, w = image.shape[:2]
    s = max(1.0, min_size / min(h, w))
    big = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_LINEAR) if s > 1 else image
    panels = []
    for records, is_gt in ((m.gts, True), (m.dets, False)):
        labels = np.array([label[r["category_id"]] for r in records], np.int64)
        scores = None if is_gt else np.array([r["score"] for r in records], np.float32)
        masks = None
        if iou_type == "segm" and records:
            masks = _masks(records, coco_gt, h, w, is_gt)
            masks = np.stack(
                [cv2.resize(x.astype(np.uint8), big.shape[1::-1], interpolation=cv2.INTER_NEAREST) for x in masks]
            ).astype(bool)
        panels.append(draw_instances(big, _boxes_xyxy(records) * s, labels, scores, masks, class_names))
    gap = np.full((big.shape[0], 8, 3), 255, np.uint8)
    body = np.concatenate([panels[0], gap, panels[1]], axis=1)
    header = np.full((44, body.shape[1], 3), 255, np.uint8)
    lines = (
        f"image {m.image_id}: {m.errors} error(s), {m.tp} of {len(m.gts)} ground truths found",
        "left: ground truth    right: predictions",
    )
    for k, text in enumerate(lines):
        cv2.putText(header, text, (4, 17 + 20 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([header, body], axis=0)


def drawing_name(group: str, rank: int, m: ImageMatch) -> str:
    """The drawing's path relative to the output folder: ``worst/01_image7.jpg``."""
    return f"{group}/{rank:02d}_image{m.image_id}.jpg"


def planned_drawings(cm: ConfusionResult, num: int = 8) -> list[str]:
    """The paths (relative to the output folder) that :func:`draw_ranked_images` may write for ``cm``."""
    groups = worst_and_best(rank_images(cm), num)
    return [drawing_name(group, rank, m) for group, items in groups.items() for rank, m in enumerate(items, 1)]


def draw_ranked_images(
    cm: ConfusionResult,
    coco_gt: Any,
    img_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    num: int = 8,
    iou_type: str = "bbox",
    progress: bool = True,
) -> dict[str, list[Path]]:
    """Draw the ``num`` worst and best images into ``out_dir/worst`` and ``out_dir/best`` (JPEG).

    Image paths are ``img_dir`` joined with each image's ``file_name`` and may not leave ``img_dir``;
    an unreadable image is skipped with a warning. ``progress``: a tqdm bar on a terminal.
    """
    import warnings

    from tqdm import tqdm

    from detkit.data.image_io import read_image, safe_join

    groups = worst_and_best(rank_images(cm), num)
    written: dict[str, list[Path]] = {group: [] for group in groups}
    todo = [(group, rank, m) for group, items in groups.items() for rank, m in enumerate(items, 1)]
    for group, rank, m in tqdm(todo, desc="drawing images", unit="img", disable=None if progress else True):
        info = coco_gt.imgs[m.image_id]
        try:
            image = read_image(safe_join(img_dir, info["file_name"]))
        except (OSError, ValueError) as e:
            warnings.warn(f"skipped image {m.image_id}: {e}", stacklevel=2)
            continue
        drawn = draw_image_pair(image, m, coco_gt, cm.names, cm.category_ids, iou_type)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            continue
        path = Path(out_dir) / drawing_name(group, rank, m)
        atomic_write(path, lambda f, b=buf: f.write(b.tobytes()))
        written[group].append(path)
    return written
