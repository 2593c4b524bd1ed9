"""Frame sources of the tracker: a folder of frames, and a MOT sequence folder given by its root."""

import cv2
import numpy as np
import pytest

from detkit.track.sources import frame_files


def test_frames_of_a_folder_and_of_a_mot_sequence(tmp_path):
    seq = tmp_path / "seq"
    (seq / "img1").mkdir(parents=True)
    for i in (2, 1):
        cv2.imwrite(str(seq / "img1" / f"{i:06d}.png"), np.zeros((8, 8, 3), np.uint8))
    (seq / "seqinfo.ini").write_text("[Sequence]\n")
    assert [p.name for p in frame_files(seq / "img1")] == ["000001.png", "000002.png"]
    assert frame_files(seq) == frame_files(seq / "img1")  # the sequence root reads img1/
    with pytest.raises(FileNotFoundError, match="holds no frame image"):
        frame_files(tmp_path)
