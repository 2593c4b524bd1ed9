"""Output names of the tracking and explain tools: one per input, and never an input's file."""

import os

import cv2
import numpy as np
import pytest

from detkit.track.video import track_video
from detkit.utils.output_names import clobbered, clobbering, unique_stems


def test_unique_stems_suffix_repeated_names_in_input_order():
    assert unique_stems(["vid", "vid", "b", "vid", "vid_2"]) == ["vid", "vid_2", "b", "vid_3", "vid_2_2"]
    assert unique_stems([]) == []


def test_an_output_that_is_an_input_is_found(tmp_path):
    gt = tmp_path / "out" / "seq.txt"
    gt.parent.mkdir()
    gt.write_text("1,1,0,0,1,1,1\n")
    other = tmp_path / "frames" / "000001.png"
    assert clobbered([tmp_path / "out" / "seq.json"], [gt, other]) is None
    assert clobbered([tmp_path / "out" / "seq.json", tmp_path / "out" / ".." / "out" / "seq.txt"], [gt]) == (
        tmp_path / "out" / ".." / "out" / "seq.txt",
        gt,
    )
    link = tmp_path / "link"
    os.symlink(gt.parent, link)  # the same folder under another name
    assert clobbered([link / "seq.txt"], [gt]) == (link / "seq.txt", gt)
    text = clobbering("out", [link / "seq.txt"], [other], gt)
    assert text == f"--out-dir out: the output {link / 'seq.txt'} would replace --gt {gt}; choose another --out-dir"
    assert "would replace the input" in clobbering("out", [link / "seq.txt"], [gt])
    assert clobbering("out", [link / "seq.json"], [other], gt) is None


def test_track_video_refuses_an_output_that_replaces_its_ground_truth(tmp_path):
    """Checked before the model runs (there is none here) and before anything is written."""
    video, gt = tmp_path / "clip.mp4", tmp_path / "clip.txt"
    gt.write_text("mine\n")
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (32, 32))
    for _ in range(2):
        writer.write(np.zeros((32, 32, 3), np.uint8))
    writer.release()
    with pytest.raises(ValueError, match=r"the output .*clip\.txt would replace the input .*clip\.txt"):
        track_video(None, video, tmp_path, gt_file=gt, draw=False, progress=False)
    assert gt.read_text() == "mine\n" and sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "clip.txt"]
