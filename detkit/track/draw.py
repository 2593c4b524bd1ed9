"""Drawing tracks: a box and ``id class score`` per track (detkit.visualization), and a trail of its recent
centres (OpenCV)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import cv2
import numpy as np

from detkit.visualization import class_color, draw_instances

__all__ = ["TrackDrawer"]


class TrackDrawer:
    """Draws one frame's tracks, remembering each id's last ``trail`` centres; one drawer per video.

    Args:
        class_names: the model's class names (labels drawn by name).
        trail: how many past centres of each track its trail joins (0 or 1: no trail).
    """

    def __init__(self, class_names: Sequence[str], trail: int = 30):
        self.class_names = list(class_names)
        self.trail = int(trail)
        self.centres: dict[int, deque] = {}

    def draw(self, image: np.ndarray, tracks: dict) -> np.ndarray:
        """A copy of the RGB uint8 ``image`` [H,W,3] with ``tracks`` (one frame of :func:`detkit.track`) drawn;
        the colour follows the id, so an id switch shows as a change of colour."""
        out = np.ascontiguousarray(image.copy())
        ids, labels = tracks["ids"].tolist(), tracks["labels"].tolist()
        boxes = tracks["boxes"].numpy().reshape(-1, 4)
        thick = max(1, round(min(out.shape[:2]) / 300))
        for tid, (x0, y0, x1, y1) in zip(ids, boxes):
            points = self.centres.setdefault(tid, deque(maxlen=max(self.trail, 1)))
            points.append((int(round((x0 + x1) / 2)), int(round((y0 + y1) / 2))))
            if self.trail > 1 and len(points) > 1:
                cv2.polylines(out, [np.array(points, np.int32)], False, class_color(tid), thick, cv2.LINE_AA)
        # draw_instances colours by label and writes class_names[label]: the id is the label here
        texts = [""] * (max(ids, default=0) + 1)
        for tid, label in zip(ids, labels):
            name = self.class_names[label] if 0 <= label < len(self.class_names) else str(label)
            texts[tid] = f"{tid} {name}"
        return draw_instances(out, boxes, tracks["ids"], tracks["scores"], class_names=texts)
