"""Classifier outputs of ``tools/infer.py``: the top-k rows of ``predictions.csv`` and images drawn with their label.

A classifier's prediction (``detkit.predict``) is ``{"scores": float [C] probabilities, "labels": int64 [k]
the top-k classes, most likely first}``. ``predictions.csv`` has one row per image (or video frame):
``file, frame`` (empty for images), then ``label_1, score_1, ..., label_k, score_k`` (class names and their
probabilities in 0..1, most likely first), and ``drawn``: the drawn image's name under the output folder (the
drawn video's for a frame; empty with ``--no-draw``), since two inputs of one name are drawn as ``name_2.jpg``.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

__all__ = [
    "MIN_DRAW_SIDE",
    "ClassificationRows",
    "csv_header",
    "draw_classification",
    "enlarged",
    "is_classification",
    "top_classes",
]

MIN_DRAW_SIDE = 192  # smaller images are enlarged (nearest neighbour) before the label is drawn on them


def is_classification(pred: Mapping) -> bool:
    """A classifier's prediction: class ``scores`` and top-k ``labels``, no boxes, masks or semantic map."""
    return "scores" in pred and "labels" in pred and "boxes" not in pred and "sem_seg" not in pred


def top_classes(pred: Mapping, class_names: Sequence[str]) -> list[tuple[str, float]]:
    """``[(class name, probability), ...]`` of the prediction's top-k labels, most likely first."""
    scores = torch.as_tensor(pred["scores"]).float().reshape(-1)
    labels = torch.as_tensor(pred["labels"]).reshape(-1).tolist()
    return [(class_names[k] if 0 <= k < len(class_names) else str(k), float(scores[k])) for k in labels]


def csv_header(k: int) -> list[str]:
    """The columns of ``predictions.csv`` for top-``k`` predictions."""
    return ["file", "frame", *(c for i in range(1, k + 1) for c in (f"label_{i}", f"score_{i}")), "drawn"]


def csv_row(file: str, frame: int | None, top: Sequence[tuple[str, float]], k: int, drawn: str = "") -> list[str]:
    """One row: the file, the frame (empty for an image), ``k`` (label, score) pairs (empty if fewer), then the
    drawing's name under the output folder (empty when not drawn)."""
    pairs = [v for name, score in top[:k] for v in (name, f"{score:.6f}")]
    return [file, "" if frame is None else str(frame), *pairs, *[""] * (2 * k - len(pairs)), drawn]


def csv_text(rows: Sequence[Sequence[str]], k: int) -> str:
    """The text of ``predictions.csv`` (header and rows)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(csv_header(k))
    writer.writerows(rows)
    return buf.getvalue()


def enlarged(image: np.ndarray) -> np.ndarray:
    """``image`` (RGB [H,W,3], or grey [H,W] made 3-channel) scaled up, nearest neighbour, to a shorter side of
    ``MIN_DRAW_SIDE`` px when it is smaller (a class name written on a 32 px image has no room); else as it is.
    How ``infer``, ``explain`` and ``browse`` draw classes on small images."""
    image = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    scale = MIN_DRAW_SIDE / max(1, min(image.shape[:2]))
    if scale <= 1:
        return image
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_NEAREST)


def draw_classification(image: np.ndarray, pred: Mapping, class_names: Sequence[str], lines: int = 3) -> np.ndarray:
    """A copy of the RGB image [H,W,3] with its ``lines`` most likely classes and their probabilities written in the
    top-left corner (a colour swatch per class); images under ``MIN_DRAW_SIDE`` px are enlarged first."""
    from detkit.visualization import class_color

    out = np.array(enlarged(image))  # a contiguous copy to draw on
    font, font_scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.4, min(out.shape[:2]) / 600)
    (_, th), base = cv2.getTextSize("Ag", font, font_scale, 1)
    labels = torch.as_tensor(pred["labels"]).reshape(-1).tolist()
    y = 2
    for label, (name, score) in list(zip(labels, top_classes(pred, class_names)))[:lines]:
        text = f"{name} {score:.2f}"
        (tw, _), _ = cv2.getTextSize(text, font, font_scale, 1)
        cv2.rectangle(out, (2, y), (th + tw + 10, y + th + base + 2), (0, 0, 0), -1)
        cv2.rectangle(out, (4, y + 2), (4 + th, y + th + 2), class_color(label), -1)
        cv2.putText(out, text, (th + 8, y + th + 1), font, font_scale, (255, 255, 255), 1, cv2.LINE_AA)
        y += th + base + 4
    return out


class ClassificationRows:
    """The rows of ``predictions.csv`` collected over a run, and how often each class came first."""

    def __init__(self, class_names: Sequence[str]):
        self.class_names = list(class_names)
        self.items: list[tuple[str, int | None, list[tuple[str, float]], str]] = []  # (file, frame, top-k, drawn)
        self.k = 0

    def __len__(self) -> int:
        return len(self.items)

    def add(self, pred: Mapping, file: str, frame: int | None, drawn: str = "") -> None:
        top = top_classes(pred, self.class_names)
        self.k = max(self.k, len(top))
        self.items.append((file, frame, top, drawn))

    def write(self, path: str | os.PathLike) -> Path:
        """Write ``predictions.csv`` atomically; returns its path."""
        from detkit.utils.files import atomic_write

        text = csv_text([csv_row(file, frame, top, self.k, drawn) for file, frame, top, drawn in self.items], self.k)
        atomic_write(path, lambda f: f.write(text.encode("utf-8")))
        return Path(path)

    def most_predicted(self, n: int = 3) -> list[tuple[str, int]]:
        """The classes that came first most often, with their counts."""
        return Counter(top[0][0] for _, _, top, _ in self.items if top).most_common(n)
