"""Constant-velocity Kalman filter on a box's centre, aspect ratio and height, as ByteTrack (and DeepSORT) use.

The state of one track is ``(cx, cy, a, h, vcx, vcy, va, vh)``: centre, aspect ratio ``w / h`` and height in
pixels, and their velocities per frame. Process and measurement noise scale with the box height, so a large
box may move more pixels between frames than a small one. The filter runs on many tracks at once: means
``[T,8]``, covariances ``[T,8,8]``.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve

__all__ = ["KalmanBoxFilter", "xyah_to_xyxy", "xyxy_to_xyah"]


def xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    """Boxes float [N,4] xyxy -> [N,4] (centre x, centre y, aspect w/h, height)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w = boxes[:, 2] - boxes[:, 0]
    h = np.maximum(boxes[:, 3] - boxes[:, 1], 1e-6)
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2, w / h, h], axis=1)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """[N,4+] (centre x, centre y, aspect, height, ...) -> boxes float [N,4] xyxy."""
    xyah = np.asarray(xyah, dtype=np.float64).reshape(len(xyah), -1)
    w = xyah[:, 2] * xyah[:, 3]
    half = np.stack([w, xyah[:, 3]], axis=1) / 2
    return np.concatenate([xyah[:, :2] - half, xyah[:, :2] + half], axis=1)


class KalmanBoxFilter:
    """Constant-velocity Kalman filter in (cx, cy, a, h) space, vectorised over tracks.

    Args:
        std_weight_position: position noise as a share of the box height (ByteTrack: 1/20).
        std_weight_velocity: velocity noise as a share of the box height (ByteTrack: 1/160).
    """

    def __init__(self, std_weight_position: float = 1.0 / 20, std_weight_velocity: float = 1.0 / 160):
        self.std_weight_position = std_weight_position
        self.std_weight_velocity = std_weight_velocity
        self.motion = np.eye(8)
        self.motion[:4, 4:] = np.eye(4)  # x_{t+1} = x_t + v_t (one frame)
        self.observe = np.eye(4, 8)  # the measurement is the first half of the state

    def _stds(self, height: np.ndarray, position: float, velocity: float, aspect: tuple[float, float]) -> np.ndarray:
        """Standard deviations [T,8] of (cx, cy, a, h, velocities) for heights [T]."""
        p, v = self.std_weight_position * position * height, self.std_weight_velocity * velocity * height
        ones = np.ones_like(height)
        return np.stack([p, p, aspect[0] * ones, p, v, v, aspect[1] * ones, v], axis=1)

    def initiate(self, xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New tracks from measurements [T,4]: means [T,8] (zero velocity) and covariances [T,8,8]."""
        xyah = np.asarray(xyah, dtype=np.float64).reshape(-1, 4)
        mean = np.concatenate([xyah, np.zeros_like(xyah)], axis=1)
        std = self._stds(xyah[:, 3], 2.0, 10.0, (1e-2, 1e-5))
        return mean, np.einsum("ti,ij->tij", std**2, np.eye(8))

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame ahead: means [T,8] and covariances [T,8,8] -> the predicted ones."""
        if len(mean) == 0:
            return mean, cov
        noise = np.einsum("ti,ij->tij", self._stds(mean[:, 3], 1.0, 1.0, (1e-2, 1e-5)) ** 2, np.eye(8))
        mean = mean @ self.motion.T
        cov = self.motion @ cov @ self.motion.T + noise
        return mean, cov

    def project(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The measurement space: means [T,4] and covariances [T,4,4] (with the measurement noise)."""
        std = self._stds(mean[:, 3], 1.0, 0.0, (1e-1, 0.0))[:, :4]
        return mean @ self.observe.T, self.observe @ cov @ self.observe.T + np.einsum("ti,ij->tij", std**2, np.eye(4))

    def update(self, mean: np.ndarray, cov: np.ndarray, xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Correct states [T,8] / [T,8,8] with their matched measurements [T,4]; returns the new states."""
        new_mean, new_cov = mean.copy(), cov.copy()
        proj_mean, proj_cov = self.project(mean, cov)
        for i in range(len(mean)):  # a Cholesky solve per track: T is small (tens of objects)
            chol = cho_factor(proj_cov[i], lower=True, check_finite=False)
            gain = cho_solve(chol, (cov[i] @ self.observe.T).T, check_finite=False).T  # [8,4]
            new_mean[i] = mean[i] + (xyah[i] - proj_mean[i]) @ gain.T
            new_cov[i] = cov[i] - gain @ proj_cov[i] @ gain.T
        return new_mean, new_cov
