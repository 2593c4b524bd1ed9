"""Drawing predictions and ground truth: boxes, labels, scores, mask overlays, semantic maps (OpenCV)."""

from __future__ import annotations

import colorsys
import os
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch


def class_color(label: int) -> tuple[int, int, int]:
    """A stable, well-separated RGB colour for a class index (golden-ratio hue steps)."""
    h = (label * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.75, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


def draw_instances(
    image: np.ndarray,
    boxes,
    labels,
    scores=None,
    masks=None,
    class_names: Sequence[str] | None = None,
    score_thr: float = 0.0,
    mask_alpha: float = 0.45,
    thickness: int | None = None,
) -> np.ndarray:
    """Return a copy of the RGB uint8 ``image`` [H,W,3] with boxes [N,4] xyxy, labels [N], scores [N]
    and masks [N,H,W] drawn; detections scoring under ``score_thr`` are left out."""
    out = np.ascontiguousarray(image.copy())
    boxes, labels = _np(boxes).reshape(-1, 4), _np(labels).reshape(-1).astype(int)
    scores = None if scores is None else _np(scores).reshape(-1)
    masks = None if masks is None else _np(masks).astype(bool)
    keep = np.ones(len(boxes), bool) if scores is None else scores >= score_thr
    order = np.argsort(scores) if scores is not None else np.arange(len(boxes))  # best drawn last, on top
    t = thickness or max(1, round(min(out.shape[:2]) / 300))
    font_scale = max(0.35, min(out.shape[:2]) / 1000)
    if masks is not None:
        for i in order:
            if keep[i]:
                color = np.array(class_color(labels[i]), np.float32)
                m = masks[i]
                out[m] = (out[m] * (1 - mask_alpha) + color * mask_alpha).astype(np.uint8)
                contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                cv2.drawContours(out, contours, -1, class_color(labels[i]), 1, cv2.LINE_AA)  # crisp outline
    for i in order:
        if not keep[i]:
            continue
        color = class_color(labels[i])
        x0, y0, x1, y1 = (int(round(v)) for v in boxes[i])
        cv2.rectangle(out, (x0, y0), (x1, y1), color, t, cv2.LINE_AA)
        name = class_names[labels[i]] if class_names is not None and labels[i] < len(class_names) else str(labels[i])
        text = name if scores is None else f"{name} {scores[i]:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        ty = y0 - 2 if y0 - th - base - 2 >= 0 else y0 + th + base + 2
        cv2.rectangle(out, (x0, ty - th - base), (x0 + tw + 2, ty + base - 2), color, -1)
        cv2.putText(out, text, (x0 + 1, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def draw_sem_seg(
    image: np.ndarray, sem_seg, alpha: float = 0.5, ignore_index: int = 255, class_names: Sequence[str] | None = None
) -> np.ndarray:
    """Return ``image`` [H,W,3] blended with the colour-coded class map ``sem_seg`` [H,W] (ignore left as is).

    With ``class_names``, a legend of the classes present is drawn in the top-left corner.
    """
    seg = _np(sem_seg).astype(np.int64)
    color = colorize_sem_seg(seg, ignore_index)
    valid = seg != ignore_index
    out = image.copy()
    out[valid] = (image[valid] * (1 - alpha) + color[valid] * alpha).astype(np.uint8)
    if class_names is not None:
        out = draw_legend(out, [int(i) for i in np.unique(seg[valid])], class_names)
    return out


def draw_legend(image: np.ndarray, labels: Sequence[int], class_names: Sequence[str]) -> np.ndarray:
    """Draw a legend (colour swatch + class name per label) in the top-left corner of a copy of ``image``."""
    out = np.ascontiguousarray(image.copy())
    font_scale = max(0.35, min(out.shape[:2]) / 1000)
    (_, th), base = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    y = 2
    for lab in labels:
        name = class_names[lab] if 0 <= lab < len(class_names) else str(lab)
        (tw, _), _ = cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        cv2.rectangle(out, (2, y), (th + tw + 10, y + th + base + 2), (0, 0, 0), -1)
        cv2.rectangle(out, (4, y + 2), (4 + th, y + th + 2), class_color(lab), -1)
        cv2.putText(
            out, name, (th + 8, y + th + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1, cv2.LINE_AA
        )
        y += th + base + 4
    return out


def colorize_sem_seg(sem_seg, ignore_index: int = 255) -> np.ndarray:
    """Colour-coded RGB image [H,W,3] of a class map [H,W]; ignored pixels are black."""
    seg = _np(sem_seg).astype(np.int64)
    ids = [int(i) for i in np.unique(seg) if i != ignore_index]
    lut = np.zeros((max(ids + [0]) + 1, 3), np.uint8)
    for i in ids:
        lut[i] = class_color(i)
    out = np.zeros((*seg.shape, 3), np.uint8)
    valid = seg != ignore_index
    out[valid] = lut[seg[valid]]
    return out


def draw_prediction(
    image: np.ndarray | Any, pred: dict, class_names: Sequence[str] | None = None, score_thr: float = 0.3
) -> np.ndarray:
    """Draw one ``detkit.predict`` result (instances and/or a semantic map) on a copy of an image.

    ``image``: an RGB numpy array [H,W,3] (uint8; float and uint16 converted as ``predict`` converts them), a
    tensor image as ``predict`` takes it (float [3,H,W] in 0..1 or uint8 [H,W,3], RGB; not a batch), a PIL image
    or an image path (read as ``predict`` reads them: EXIF orientation applied). Detections scoring under
    ``score_thr`` are left out: 0.3 by default, as ``detkit infer --draw-thr`` (a YOLO config's test threshold,
    0.001, keeps up to 100-300 low-score boxes); pass 0 to draw every detection. Returns an RGB uint8 array.
    """
    out = _image_array(image)
    if "sem_seg" in pred:
        out = draw_sem_seg(out, pred["sem_seg"], class_names=class_names)
    if "boxes" in pred:
        out = draw_instances(
            out, pred["boxes"], pred["labels"], pred.get("scores"), pred.get("masks"), class_names, score_thr
        )
    return out


def _image_array(image: Any) -> np.ndarray:
    """An RGB uint8 array [H,W,3] of a numpy image, a tensor image, a PIL image or a path, read as ``detkit.predict``
    reads them (``detkit.inference.runner.to_rgb_array``: float and uint16 arrays converted, grayscale repeated, a
    float [3,H,W] tensor in 0..1 scaled by 255)."""
    readable = (np.ndarray, torch.Tensor, str, os.PathLike)
    if isinstance(image, readable) or (hasattr(image, "convert") and hasattr(image, "mode")):
        from detkit.inference.runner import to_rgb_array

        return to_rgb_array(image, who="draw_prediction")
    raise TypeError(
        f"draw_prediction: image must be an RGB numpy image (uint8 [H,W,3], or float / uint16 as predict takes), "
        f"a tensor image (float [3,H,W] in 0..1, uint8 [H,W,3]), a PIL image or an image path, got "
        f"{type(image).__name__}"
    )


def draw_sample(sample: dict, class_names: Sequence[str] | None = None) -> np.ndarray:
    """Draw a ground-truth sample dict (``image`` RGB [H,W,3], ``boxes``, ``labels``, ``masks?``, ``sem_seg?``)."""
    out = sample["image"]
    if sample.get("sem_seg") is not None:
        out = draw_sem_seg(out, sample["sem_seg"], class_names=class_names)
    if sample.get("boxes") is not None:
        out = draw_instances(
            out,
            sample["boxes"],
            sample.get("labels", np.zeros(len(sample["boxes"]), int)),
            masks=sample.get("masks"),
            class_names=class_names,
        )
    return out
