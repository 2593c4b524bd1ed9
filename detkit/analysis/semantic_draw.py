"""Drawings of the semantic analysis: an image's ground truth, prediction and wrong pixels side by side, drawn with
``detkit.visualization.draw_sem_seg`` (the class colours of every detkit drawing)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from detkit.utils.files import atomic_write

if TYPE_CHECKING:
    from detkit.analysis.semantic import ImageScore
    from detkit.analysis.semantic_inputs import LabelReading

__all__ = ["draw_comparison", "draw_worst"]

MIN_SIDE = 192  # smaller images are enlarged (maps: nearest neighbour) so that legends and titles fit
TITLE_HEIGHT = 18
ERROR_RGB = (255, 40, 40)


def _titled(panel: np.ndarray, title: str) -> np.ndarray:
    """``panel`` [H,W,3] under a black strip holding ``title``."""
    strip = np.zeros((TITLE_HEIGHT, panel.shape[1], 3), np.uint8)
    cv2.putText(strip, title, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([strip, panel], axis=0)


def draw_comparison(
    image: np.ndarray,
    gt: np.ndarray,
    pred: np.ndarray,
    class_names: Sequence[str],
    ignore_index: int = 255,
    miou: float = math.nan,
) -> np.ndarray:
    """Three panels side by side, RGB uint8 [H+18, 3W+8, 3]: the ground truth ``gt`` [H,W] and the prediction
    ``pred`` [H,W] over ``image`` [H,W,3] (each with a legend of its classes; ignored pixels left as they are),
    then the pixels the prediction gets wrong in red (ignored pixels never count)."""
    from detkit.visualization import draw_sem_seg

    scale = max(1.0, MIN_SIDE / max(1, min(gt.shape)))
    if scale > 1:
        size = (round(gt.shape[1] * scale), round(gt.shape[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        gt, pred = (cv2.resize(m.astype(np.int32), size, interpolation=cv2.INTER_NEAREST) for m in (gt, pred))
    gt, pred = gt.astype(np.int64), pred.astype(np.int64)
    valid = gt != ignore_index
    wrong = valid & (gt != pred)
    errors = (image * 0.4).astype(np.uint8)
    errors[wrong] = ERROR_RGB
    share = wrong.sum() / max(int(valid.sum()), 1)
    panels = [
        _titled(draw_sem_seg(image, gt, ignore_index=ignore_index, class_names=class_names), "ground truth"),
        _titled(draw_sem_seg(image, pred, ignore_index=-1, class_names=class_names), f"prediction  mIoU {miou:.3f}"),
        _titled(errors, f"wrong pixels (red): {share:.1%}"),
    ]
    gap = np.full((panels[0].shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)


def _image_for(path: str, shape: tuple[int, int]) -> np.ndarray | None:
    """The predicted image (read as infer read it) when it is still there and of the maps' size, else None."""
    from detkit.data.image_io import ImageReadError, read_image

    try:
        image = read_image(path)
    except (ImageReadError, OSError):
        return None
    return image if image.shape[:2] == shape else None


def chosen_for_drawing(ranked: Sequence[ImageScore], num_images: int) -> list[ImageScore]:
    """The first ``num_images`` of ``ranked`` (worst first) that have a wrong pixel: the images drawn."""
    return [s for s in ranked if not math.isnan(s.aAcc) and s.aAcc < 1.0][:num_images]


def drawing_name(rank: int, score: ImageScore) -> str:
    """A drawing's file name in the ``worst/`` folder: ``01_<image stem>.jpg``."""
    return f"{rank:02d}_{Path(score.pair.image).stem}.jpg"


def draw_worst(
    ranked: Sequence[ImageScore],
    reading: LabelReading,
    class_names: Sequence[str],
    folder: Path,
    num_images: int,
    progress: bool | None = None,
) -> list[Path]:
    """Draw the first ``num_images`` of ``ranked`` (worst first) that have a wrong pixel into ``folder`` as
    ``NN_<stem>.jpg``, each over its image read from ``pair.path`` (images.json's absolute ``path``); an image
    no longer found is replaced by grey (one warning). Returns the paths written."""
    from detkit.engine.logger import progress_bar

    chosen = chosen_for_drawing(ranked, num_images)
    written, lost = [], []
    for rank, s in enumerate(progress_bar(chosen, desc="drawing worst", enabled=progress, unit="image"), start=1):
        gt, pred = reading.read_gt(s.pair.gt), reading.read_pred(s.pair.pred)
        image = _image_for(s.pair.path, gt.shape)
        if image is None:
            lost.append(s.pair.path)
            image = np.full((*gt.shape, 3), 128, np.uint8)
        drawn = draw_comparison(image, gt, pred, class_names, reading.ignore_index, s.mIoU)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        if ok:
            path = folder / drawing_name(rank, s)
            atomic_write(path, lambda f, b=buf: f.write(b.tobytes()))
            written.append(path)
    if lost:
        warnings.warn(
            f"{len(lost)} predicted image(s) are no longer readable at the path images.json gives (e.g. {lost[0]}) "
            "or have another size than their maps: their worst/ drawings show the maps on grey (infer folders of "
            "older versions hold paths relative to where infer ran: run analyze from there)",
            UserWarning,
            stacklevel=2,
        )
    return written
