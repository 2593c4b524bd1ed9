"""The constant-velocity Kalman filter: box conversions, velocity learnt from measurements, covariances."""

import numpy as np

from detkit.track import KalmanBoxFilter
from detkit.track.kalman import xyah_to_xyxy, xyxy_to_xyah


def test_xyah_round_trip():
    boxes = np.array([[10.0, 20.0, 50.0, 100.0], [0.0, 0.0, 1.0, 2.0]])
    np.testing.assert_allclose(xyxy_to_xyah(boxes), [[30, 60, 0.5, 80], [0.5, 1, 0.5, 2]])
    np.testing.assert_allclose(xyah_to_xyxy(xyxy_to_xyah(boxes)), boxes)


def test_learns_the_velocity_and_predicts_ahead():
    kf = KalmanBoxFilter()
    box = lambda t: np.array([[20 + 3.0 * t, 40 - 1.0 * t, 60 + 3.0 * t, 100 - 1.0 * t]])  # noqa: E731
    mean, cov = kf.initiate(xyxy_to_xyah(box(0)))
    for t in range(1, 30):
        mean, cov = kf.predict(mean, cov)
        mean, cov = kf.update(mean, cov, xyxy_to_xyah(box(t)))
    np.testing.assert_allclose(mean[0, 4:6], [3.0, -1.0], atol=0.05)
    for _ in range(5):  # five frames without a measurement: the box keeps moving
        mean, cov = kf.predict(mean, cov)
    np.testing.assert_allclose(xyah_to_xyxy(mean[:, :4]), box(34), atol=0.5)
    assert np.all(np.linalg.eigvalsh(cov[0]) > 0)  # still a covariance


def test_uncertainty_grows_without_measurements_and_shrinks_with_them():
    kf = KalmanBoxFilter()
    mean, cov = kf.initiate(np.array([[50.0, 50.0, 1.0, 40.0]]))
    predicted_mean, predicted = kf.predict(mean, cov)
    assert np.trace(predicted[0]) > np.trace(cov[0])
    _, updated = kf.update(predicted_mean, predicted, np.array([[50.0, 50.0, 1.0, 40.0]]))
    assert np.trace(updated[0]) < np.trace(predicted[0])
