"""One track's state (identity, last box and score, class votes, Kalman state) and a frame's output dict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["Track", "frame_output"]


@dataclass
class Track:
    """A followed object. ``track_id`` is 0 until the track is confirmed (then 1, 2, ... in order of confirmation).

    ``label`` is the class with the largest summed detection score over the track's detections, so one
    misclassified frame does not change it. ``mean`` [8] / ``cov`` [8,8] hold the Kalman state where a
    tracker uses one.
    """

    box: np.ndarray  # float [4] xyxy: the last matched detection (or the filtered box)
    score: float
    start_frame: int
    last_frame: int  # the frame of the last matched detection
    track_id: int = 0
    confirmed: bool = False
    lost: bool = False
    hits: int = 1
    label_scores: dict[int, float] = field(default_factory=dict)
    mean: np.ndarray | None = None
    cov: np.ndarray | None = None

    @classmethod
    def start(cls, box: np.ndarray, score: float, label: int, frame: int) -> Track:
        """A new (unconfirmed, id 0) track from one detection: box [4] xyxy, score, label."""
        return cls(
            box=np.asarray(box, dtype=np.float64),
            score=float(score),
            start_frame=frame,
            last_frame=frame,
            label_scores={int(label): float(score)},
        )

    @property
    def label(self) -> int:
        return max(self.label_scores, key=self.label_scores.get)

    def observe(self, box: np.ndarray, score: float, label: int, frame: int) -> None:
        """Record this frame's matched detection (box [4] xyxy, score, label)."""
        self.box = np.asarray(box, dtype=np.float64)
        self.score = float(score)
        self.label_scores[int(label)] = self.label_scores.get(int(label), 0.0) + float(score)
        self.last_frame = frame
        self.hits += 1
        self.lost = False


def frame_output(tracks: Sequence[Track]) -> dict[str, torch.Tensor]:
    """The tracks shown in one frame, by increasing id: ``ids`` int64 [T], ``boxes`` float32 [T,4] xyxy,
    ``scores`` float32 [T], ``labels`` int64 [T]."""
    tracks = sorted(tracks, key=lambda t: t.track_id)
    boxes = np.stack([t.box for t in tracks]) if tracks else np.zeros((0, 4))
    return {
        "ids": torch.tensor([t.track_id for t in tracks], dtype=torch.int64),
        "boxes": torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "scores": torch.tensor([t.score for t in tracks], dtype=torch.float32),
        "labels": torch.tensor([t.label for t in tracks], dtype=torch.int64),
    }
