"""ByteTrack (Zhang et al., ECCV 2022): every detection box is associated, the low-score ones in a second pass.

Per frame: the Kalman filter predicts every track; confident detections (score >= ``high_thr``) are matched
to the tracked and lost tracks by IoU; the low-score detections (``low_thr`` <= score < ``high_thr``, mostly
occluded or blurred objects) are then matched to the tracks still unmatched, which keeps a track alive
through a partial occlusion without starting false tracks from low scores; tracks left unmatched become
*lost* and are kept ``track_buffer`` frames, so an object hidden for a few frames gets its id back. A new
track starts from an unmatched confident detection and is confirmed (given an id) when it is matched again
in the next frame (at once in the first frame).
"""

from __future__ import annotations

import numpy as np
import torch

from detkit.track.kalman import KalmanBoxFilter, xyah_to_xyxy, xyxy_to_xyah
from detkit.track.matching import assign, iou_cost
from detkit.track.state import Track, frame_output

__all__ = ["ByteTracker", "as_numpy_detections"]


def as_numpy_detections(boxes, scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detections as numpy: boxes float64 [N,4] xyxy, scores float64 [N], labels int64 [N] (tensors or arrays).

    Raises:
        TypeError: one of them is None (a frame without detections is three empty arrays).
        ValueError: boxes that are not [N,4], or lengths that disagree.
    """
    for name, value in (("boxes", boxes), ("scores", scores), ("labels", labels)):
        if value is None:
            raise TypeError(
                f"update: {name} is None; give boxes [N,4] xyxy, scores [N] and labels [N] (class indices; zeros "
                "for a one-class detector), and for a frame without detections empty ones: "
                "torch.zeros((0, 4)), torch.zeros(0), torch.zeros(0, dtype=torch.int64)"
            )

    def arr(x, dtype):
        return (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)).astype(dtype)

    boxes = arr(boxes, np.float64)
    if boxes.size % 4 or (boxes.size and boxes.ndim == 2 and boxes.shape[1] != 4):
        raise ValueError(f"update: boxes must be [N,4] xyxy, got shape {tuple(boxes.shape)}")
    boxes = boxes.reshape(-1, 4)
    scores, labels = arr(scores, np.float64).reshape(-1), arr(labels, np.int64).reshape(-1)
    if not len(boxes) == len(scores) == len(labels):
        raise ValueError(
            f"detections disagree in length: {len(boxes)} boxes, {len(scores)} scores, {len(labels)} labels"
        )
    return boxes, scores, labels


def check_fraction(**values: float) -> None:
    """Each keyword's value must lie in [0, 1]; a ValueError names the first that does not."""
    for name, value in values.items():
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")


class ByteTracker:
    """Online multi-object tracker: call :meth:`update` once per frame with that frame's detections.

    Args:
        high_thr: detections at or above this score take part in the first association and start tracks.
        low_thr: detections in [low_thr, high_thr) take part in the second association only.
        track_buffer: frames a lost track is kept before it is dropped (ByteTrack: 30 at 30 fps).
        fuse_score: multiply the IoU by the detection score in the first pass (ByteTrack on MOT17).
        match_iou: minimum IoU (times the score with ``fuse_score``) of a first-pass match (ByteTrack: 0.2).
        new_track_thr: minimum score of a detection that starts a track (default: ``high_thr``).
        low_match_iou: minimum IoU of a second-pass match (ByteTrack: 0.5).
        unconfirmed_match_iou: minimum IoU that confirms a one-frame-old track (ByteTrack: 0.3).
        std_weight_position, std_weight_velocity: the Kalman filter's noise (:class:`KalmanBoxFilter`).
    """

    def __init__(
        self,
        high_thr: float = 0.5,
        low_thr: float = 0.1,
        track_buffer: int = 30,
        fuse_score: bool = True,
        match_iou: float = 0.2,
        new_track_thr: float | None = None,
        low_match_iou: float = 0.5,
        unconfirmed_match_iou: float = 0.3,
        std_weight_position: float = 1.0 / 20,
        std_weight_velocity: float = 1.0 / 160,
    ):
        new_track_thr = high_thr if new_track_thr is None else new_track_thr
        check_fraction(
            high_thr=high_thr,
            low_thr=low_thr,
            new_track_thr=new_track_thr,
            match_iou=match_iou,
            low_match_iou=low_match_iou,
            unconfirmed_match_iou=unconfirmed_match_iou,
        )
        if low_thr > high_thr:
            raise ValueError(f"low_thr ({low_thr}) must not exceed high_thr ({high_thr})")
        if int(track_buffer) < 0:
            raise ValueError(f"track_buffer must be >= 0 frames, got {track_buffer}")
        self.high_thr, self.low_thr, self.new_track_thr = float(high_thr), float(low_thr), float(new_track_thr)
        self.match_iou, self.low_match_iou = float(match_iou), float(low_match_iou)
        self.unconfirmed_match_iou = float(unconfirmed_match_iou)
        self.track_buffer, self.fuse_score = int(track_buffer), bool(fuse_score)
        self.kalman = KalmanBoxFilter(std_weight_position, std_weight_velocity)
        self.reset()

    def options(self) -> dict[str, float | int | bool]:
        """The tracker's settings (its constructor's keyword arguments), e.g. for a results file."""
        names = ("high_thr", "low_thr", "track_buffer", "fuse_score", "match_iou", "new_track_thr", "low_match_iou")
        out = {name: getattr(self, name) for name in names + ("unconfirmed_match_iou",)}
        out["std_weight_position"] = self.kalman.std_weight_position
        out["std_weight_velocity"] = self.kalman.std_weight_velocity
        return out

    def reset(self) -> None:
        """Forget every track and restart the ids at 1 (a new video)."""
        self.tracks: list[Track] = []
        self.frame = 0
        self.next_id = 1

    def _predict(self) -> None:
        """Move every track one frame ahead; a lost track keeps its size (ByteTrack zeroes its height velocity)."""
        if not self.tracks:
            return
        mean = np.stack([t.mean for t in self.tracks])
        cov = np.stack([t.cov for t in self.tracks])
        lost = np.array([t.lost for t in self.tracks])
        mean[lost, 7] = 0.0
        mean, cov = self.kalman.predict(mean, cov)
        for t, m, c in zip(self.tracks, mean, cov):
            t.mean, t.cov = m, c
            t.box = xyah_to_xyxy(m[None, :4])[0]

    def _match(self, tracks: list[Track], det: tuple, idx: list[int], min_iou: float, fuse: bool) -> tuple:
        """Associate ``tracks`` with detections ``idx`` of ``det`` = (boxes, scores, labels); update the matched
        ones. Returns (unmatched tracks, unmatched detection indices)."""
        boxes, scores, labels = det
        track_boxes = np.stack([t.box for t in tracks]) if tracks else np.zeros((0, 4))
        cost = iou_cost(track_boxes, boxes[idx], scores[idx] if fuse else None)
        matches, free_tracks, free_dets = assign(cost, 1.0 - min_iou)
        for ti, di in matches:
            self._update_track(tracks[ti], boxes[idx[di]], scores[idx[di]], labels[idx[di]])
        return [tracks[i] for i in free_tracks], [idx[j] for j in free_dets]

    def _update_track(self, track: Track, box: np.ndarray, score: float, label: int) -> None:
        mean, cov = self.kalman.update(track.mean[None], track.cov[None], xyxy_to_xyah(box[None]))
        track.mean, track.cov = mean[0], cov[0]
        track.observe(xyah_to_xyxy(mean[:, :4])[0], score, label, self.frame)
        if not track.confirmed:
            self._confirm(track)

    def _confirm(self, track: Track) -> None:
        track.confirmed, track.track_id = True, self.next_id
        self.next_id += 1

    def _start_tracks(self, det: tuple, idx: list[int]) -> None:
        boxes, scores, labels = det
        for i in idx:
            if scores[i] < self.new_track_thr:
                continue
            track = Track.start(boxes[i], scores[i], labels[i], self.frame)
            track.mean, track.cov = (a[0] for a in self.kalman.initiate(xyxy_to_xyah(boxes[i][None])))
            if self.frame == 1:
                self._confirm(track)
            self.tracks.append(track)

    def update(self, boxes, scores, labels) -> dict[str, torch.Tensor]:
        """Associate one frame's detections (boxes [N,4] xyxy, scores [N], labels [N]; tensors or arrays).

        Returns the confirmed tracks matched in this frame: ``ids`` int64 [T], ``boxes`` float32 [T,4] xyxy (the
        Kalman-filtered box, as ByteTrack reports), ``scores`` [T] (the matched detection's), ``labels`` [T].
        """
        det = as_numpy_detections(boxes, scores, labels)
        self.frame += 1
        self._predict()
        high = [i for i in range(len(det[1])) if det[1][i] >= self.high_thr]
        low = [i for i in range(len(det[1])) if self.low_thr <= det[1][i] < self.high_thr]
        pool = [t for t in self.tracks if t.confirmed]  # tracked and lost
        unconfirmed = [t for t in self.tracks if not t.confirmed]
        # 1) confident detections against every confirmed track, lost ones included (re-identification)
        left, high = self._match(pool, det, high, self.match_iou, self.fuse_score)
        # 2) low-score detections against the tracks that were followed in the previous frame
        left, _ = self._match([t for t in left if not t.lost], det, low, self.low_match_iou, False)
        for t in left:
            t.lost = True
        # 3) one-frame-old tracks are confirmed by a confident detection or dropped
        dropped, high = self._match(unconfirmed, det, high, self.unconfirmed_match_iou, self.fuse_score)
        self._start_tracks(det, high)
        self.tracks = [
            t
            for t in self.tracks
            if not any(t is d for d in dropped) and not (t.lost and self.frame - t.last_frame > self.track_buffer)
        ]
        return frame_output([t for t in self.tracks if t.confirmed and t.last_frame == self.frame])
