"""The baseline: detections linked frame to frame by IoU alone (the "IOU tracker" of Bochinski et al., 2017,
with an optimal instead of a greedy assignment). No motion model, no second pass, no memory: a track ends the
first frame it is not matched, and the object gets a new id when it is detected again."""

from __future__ import annotations

import numpy as np
import torch

from detkit.track.bytetrack import as_numpy_detections, check_fraction
from detkit.track.matching import assign, iou_cost
from detkit.track.state import Track, frame_output

__all__ = ["IoUTracker"]


class IoUTracker:
    """Links each detection (score >= ``score_thr``) to the previous frame's track it overlaps best.

    Args:
        score_thr: detections below this score are ignored.
        match_iou: minimum IoU between a track's last box and a detection to continue the track.
    """

    def __init__(self, score_thr: float = 0.5, match_iou: float = 0.3):
        check_fraction(score_thr=score_thr, match_iou=match_iou)
        self.score_thr, self.match_iou = float(score_thr), float(match_iou)
        self.reset()

    def options(self) -> dict[str, float]:
        """The tracker's settings (its constructor's keyword arguments)."""
        return {"score_thr": self.score_thr, "match_iou": self.match_iou}

    def reset(self) -> None:
        """Forget every track and restart the ids at 1 (a new video)."""
        self.tracks: list[Track] = []
        self.frame = 0
        self.next_id = 1

    def update(self, boxes, scores, labels) -> dict[str, torch.Tensor]:
        """Link one frame's detections (boxes [N,4] xyxy, scores [N], labels [N]); returns this frame's tracks
        (``ids``, ``boxes`` (the detections'), ``scores``, ``labels``), as :meth:`ByteTracker.update`."""
        boxes, scores, labels = as_numpy_detections(boxes, scores, labels)
        self.frame += 1
        keep = [i for i in range(len(scores)) if scores[i] >= self.score_thr]
        previous = np.stack([t.box for t in self.tracks]) if self.tracks else np.zeros((0, 4))
        matches, _, free = assign(iou_cost(previous, boxes[keep]), 1.0 - self.match_iou)
        alive = []
        for ti, di in matches:
            i = keep[di]
            self.tracks[ti].observe(boxes[i], scores[i], labels[i], self.frame)
            alive.append(self.tracks[ti])
        for di in free:
            i = keep[di]
            track = Track.start(boxes[i], scores[i], labels[i], self.frame)
            track.confirmed, track.track_id = True, self.next_id
            self.next_id += 1
            alive.append(track)
        self.tracks = alive
        return frame_output(alive)
