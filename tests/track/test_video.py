"""The drawn video: frames of another size than the first are letterboxed into it, not dropped by OpenCV."""

import cv2
import numpy as np
import pytest

from detkit.track.video import VideoOut, letterbox


def decoded(path):
    cap, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def test_letterbox_keeps_the_aspect_ratio_on_black():
    out = letterbox(np.full((20, 40, 3), 200, np.uint8), 40, 40)
    assert out.shape == (40, 40, 3)
    assert out[:10].max() == 0 and out[30:].max() == 0 and out[10:30].min() == 200


def test_frames_of_another_size_are_letterboxed_with_one_warning(tmp_path):
    video = VideoOut(tmp_path / "v.mp4", 10.0, 64, 48)
    sizes = [(48, 64), (48, 64), (96, 128), (30, 50), (48, 64)]
    with pytest.warns(UserWarning) as record:
        for h, w in sizes:
            video.write(np.full((h, w, 3), 120, np.uint8))
    video.close()
    assert len(record) == 1 and "letterboxed" in str(record[0].message) and video.resized == 2
    frames = decoded(tmp_path / "v.mp4")
    assert len(frames) == len(sizes) and {f.shape for f in frames} == {(48, 64, 3)}  # none dropped
