"""Frame sources of the tracker: a folder of frames (natural order, unreadable frames, seqinfo.ini frame rate),
a MOT sequence folder given by its root, and webcams / streams refused with a hint."""

import warnings

import cv2
import numpy as np
import pytest

from detkit.data.image_io import ImageReadError
from detkit.track.sources import DEFAULT_FPS, folder_fps, frame_files, live_source, open_frames


def write_frames(folder, names, size=(8, 8)):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        cv2.imwrite(str(folder / name), np.full((*size, 3), i, np.uint8))


def test_frames_of_a_folder_and_of_a_mot_sequence(tmp_path):
    seq = tmp_path / "seq"
    write_frames(seq / "img1", ["000002.png", "000001.png"])
    (seq / "seqinfo.ini").write_text("[Sequence]\n")
    assert [p.name for p in frame_files(seq / "img1")] == ["000001.png", "000002.png"]
    assert frame_files(seq) == frame_files(seq / "img1")  # the sequence root reads img1/
    with pytest.raises(FileNotFoundError, match="holds no frame image"):
        frame_files(tmp_path)


def test_frames_are_read_in_natural_order(tmp_path):
    names = [f"frame_{i}.png" for i in (1, 10, 11, 2, 3, 20)]
    write_frames(tmp_path / "f", names)
    assert [p.name for p in frame_files(tmp_path / "f")] == [f"frame_{i}.png" for i in (1, 2, 3, 10, 11, 20)]
    write_frames(tmp_path / "g", ["b2.png", "a10.png", "a9.png", "b10.png"])  # text, then numbers by value
    assert [p.name for p in frame_files(tmp_path / "g")] == ["a9.png", "a10.png", "b2.png", "b10.png"]


def test_an_unreadable_frame_is_none_and_keeps_the_numbering(tmp_path):
    folder = tmp_path / "f"
    write_frames(folder, ["1.png", "2.png", "4.png"])
    (folder / "3.png").write_bytes(b"not an image")
    with pytest.warns(UserWarning, match=r"unreadable frame: .*3\.png"):
        info, frames = open_frames(folder)
        frames = list(frames)
    assert info["frame_count"] == 4 and [f is None for f in frames] == [False, False, True, False]
    assert [int(f[0, 0, 0]) for f in frames if f is not None] == [0, 1, 2]
    (folder / "1.png").write_bytes(b"")  # the first frame too: the size comes from the first readable one
    with pytest.warns(UserWarning) as record:
        info, frames = open_frames(folder)
        assert [f is None for f in frames] == [True, False, True, False] and info["width"] == 8
    assert [str(w.message).split(": ")[1].rsplit("/", 1)[1] for w in record] == ["1.png", "3.png"]
    for name in ("2.png", "4.png"):
        (folder / name).write_bytes(b"")
    with pytest.raises(ImageReadError, match="no frame of"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        open_frames(folder)


def test_frame_rate_of_a_folder_comes_from_seqinfo_ini(tmp_path):
    seq = tmp_path / "seq"
    write_frames(seq / "img1", ["000001.png"])
    assert open_frames(seq / "img1")[0]["fps"] == DEFAULT_FPS  # no seqinfo.ini
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=seq\nimDir=img1\nframeRate=14\nseqLength=1\n")
    assert open_frames(seq / "img1")[0]["fps"] == 14.0  # seq/img1 + seq/seqinfo.ini (MOT's layout)
    assert open_frames(seq)[0]["fps"] == 14.0  # the sequence root
    assert open_frames(seq, fps=7.5)[0]["fps"] == 7.5  # given: wins
    (seq / "seqinfo.ini").write_text("[Sequence]\nframeRate=fast\n")
    with pytest.warns(UserWarning, match="frameRate 'fast' is not a positive number"):
        assert folder_fps(seq / "img1") == DEFAULT_FPS


@pytest.mark.parametrize("source", ["0", "1", "rtsp://127.0.0.1:8554/cam", "http://host/live.m3u8"])
def test_webcams_and_streams_are_refused_with_a_hint(source):
    assert live_source(source)
    with pytest.raises(FileNotFoundError, match=f"{source} is a webcam or a stream: .* record it to a file first"):
        open_frames(source)


def test_an_existing_path_named_like_a_webcam_is_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_frames(tmp_path / "0", ["1.png"])
    assert not live_source("0") and open_frames("0")[0]["frame_count"] == 1
