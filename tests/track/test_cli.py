"""``detkit track`` (detkit/cli/track.py): Ultralytics' words, webcams, bad ground truths and flags that do nothing
are refused with one line before the model loads; a frame folder in natural order, with an unreadable frame and
frames of another size, is tracked whole at its seqinfo.ini frame rate; --classes tracks the classes named."""

import json
import shutil
import sys
from pathlib import Path

import cv2
import pytest

import detkit
from detkit.cli.track import main as track_main
from detkit.data.image_io import read_image
from detkit.data.synthetic_track import make_shapes_track
from detkit.track import mot_lines

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_detector import save_tiny_detector  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_detector(tmp_path_factory.mktemp("ckpt") / "model.pth")


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    """A MOT sequence whose img1/ holds frame_1.png ... frame_10.png (natural order is not text order), frame 3
    unreadable and frame 5 of another size, and a seqinfo.ini with frameRate 7."""
    made = make_shapes_track(tmp_path_factory.mktemp("seq") / "made", num_frames=10, num_moving=2, size=(128, 128))
    seq = made["frames"].parent.parent / "seq"
    (seq / "img1").mkdir(parents=True)
    for i, src in enumerate(sorted(made["frames"].glob("*.png")), 1):
        shutil.copy(src, seq / "img1" / f"frame_{i}.png")
    (seq / "img1" / "frame_3.png").write_bytes(b"broken")
    five = seq / "img1" / "frame_5.png"
    cv2.imwrite(str(five), cv2.resize(cv2.imread(str(five)), (160, 96)))
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=seq\nimDir=img1\nframeRate=7\nseqLength=10\n")
    return {"seq": seq, "frames": seq / "img1", "gt": made["gt"]}


def refused(capsys, argv, lines=1):
    """Run ``detkit track argv``: exit status 2 and ``lines`` lines on stderr, returned."""
    try:
        code = track_main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == lines and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    "words,answer",
    [
        (["--tracker", "bytetrack.yaml"], "detkit's: --tracker bytetrack"),
        (["--tracker=botsort.yaml"], "BoT-SORT is not available in detkit; ByteTrack is: --tracker bytetrack"),
        (["tracker=bytetrack.yaml"], "detkit's: --tracker bytetrack"),
        (["conf=0.3"], "conf=0.3 is Ultralytics' word; detkit's: --score-thr 0.3"),
        (["--conf", "0.3"], "--conf 0.3 is Ultralytics' word; detkit's: --score-thr 0.3"),
        (["--persist"], "detkit track follows each input's whole video with one tracker"),
        (["persist=True"], "detkit track follows each input's whole video"),
        (["--show"], "the drawn video is written under --out-dir"),
        (["classes=0"], "classes=0 is Ultralytics' word; detkit's: --classes 0 (class names or indices"),
        (["classes=[0,2]"], "detkit's: --classes 0 2"),
        (["iou=0.5"], "--nms-iou 0.5"),
        (["imgsz=640"], "the frame size is the model config's test pipeline"),
        (["vid_stride=2"], "a KEY=VALUE word is Ultralytics' form; detkit track takes flags"),
    ],
)
def test_ultralytics_words_get_detkits_answer(tmp_path, capsys, words, answer):
    argv = ["-", tmp_path / "m.pth", tmp_path / "v.mp4", "--out-dir", tmp_path / "o", *words]
    assert answer in refused(capsys, argv)
    refused(capsys, [*argv, "conf=0.2", "--show"], lines=3)  # one line each
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("source", ["0", "rtsp://127.0.0.1:8554/cam", "http://example.com/live.mjpg"])
def test_webcams_and_streams_are_refused_with_a_hint(checkpoint, tmp_path, capsys, source):
    err = refused(capsys, ["-", checkpoint, source, "--out-dir", tmp_path / "o"])
    assert f"VIDEO {source}: webcams and streams are not read by `detkit track`; record to a file first" in err
    assert "stream=True" in err and "not found" not in err


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "holds no box to score: the file has no line"),
        ("frame,id,x,y,w,h,conf,class,vis\n1,1,0,0,9,9,1,1,1\n", "line 1: 'frame,id,x,y,w,h,conf,class,vis' is not"),
        ("1,1,0,0,9,9,0,1,1\n", "each of its 1 lines has consider (7th field) 0"),
    ],
)
def test_a_bad_ground_truth_is_refused_before_the_model_loads(
    checkpoint, sequence, tmp_path, capsys, monkeypatch, text, message
):
    gt = tmp_path / "gt.txt"
    gt.write_text(text)
    monkeypatch.setattr(detkit, "init_model", lambda *a, **k: pytest.fail("the model was loaded"))
    err = refused(capsys, ["-", checkpoint, sequence["frames"], "--out-dir", tmp_path / "o", "--gt", gt])
    assert f"--gt GT_FILE: ground truth {gt}" in err and message in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--tracker", "iou", "--low-thr", "0.2"], "--low-thr: ByteTrack's, nothing with --tracker iou"),
        (["--tracker", "iou", "--track-buffer", "5", "--no-fuse-score"], "--track-buffer, --no-fuse-score: Byte"),
        (["--fps", "0"], "--fps must be > 0"),
        (["--fps", "-3"], "--fps must be > 0"),
    ],
)
def test_flags_that_do_nothing_or_are_out_of_range_are_refused(checkpoint, sequence, tmp_path, capsys, flags, message):
    assert message in refused(capsys, ["-", checkpoint, sequence["frames"], "--out-dir", tmp_path / "o", *flags])


def test_fps_of_a_video_is_refused(checkpoint, tmp_path, capsys):
    video = tmp_path / "v.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (32, 32))
    writer.write(cv2.UMat(32, 32, cv2.CV_8UC3, (0, 0, 0)).get())
    writer.release()
    err = refused(capsys, ["-", checkpoint, video, "--out-dir", tmp_path / "o", "--fps", "10"])
    assert "--fps sets the frame rate of a folder of frames" in err


def test_a_folder_with_an_unreadable_frame_and_mixed_sizes_is_tracked_whole(checkpoint, sequence, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["-", checkpoint, sequence["frames"], "--out-dir", out, "--device", "cpu"]
    assert track_main([str(a) for a in [*args, "--score-thr", "0.6", "--gt", sequence["gt"]]]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("WARNING: unreadable frame") == 1 and "frame_3.png" in captured.err
    assert captured.err.count("letterboxed") == 1
    assert "1 unreadable frame (3): tracked with no detections" in captured.out and "MOTA" in captured.out
    report = json.loads((out / "seq.json").read_text())
    assert (report["frames"], report["fps"], report["unreadable"]) == (10, 7.0, [3])
    assert (report["width"], report["height"]) == (128, 128)
    cap, count = cv2.VideoCapture(str(out / "seq.mp4")), 0
    while cap.grab():
        count += 1
    cap.release()
    assert count == 10  # the frame of another size is in the video, the unreadable one repeats the previous
    # the library, on the frames in natural order (frame_2 before frame_10), gives the same tracks
    files = [sequence["frames"] / f"frame_{i}.png" for i in range(1, 11)]
    frames = [None if i == 3 else read_image(f) for i, f in enumerate(files, 1)]
    model = detkit.init_model(None, checkpoint, device="cpu")
    lines = (out / "seq.txt").read_text().splitlines()
    assert lines and mot_lines(detkit.track(model, frames, high_thr=0.6)) == lines
    assert {int(line.split(",")[0]) for line in lines} <= set(range(1, 11)) - {3}


def test_fps_flag_and_the_best_score_when_nothing_reaches_the_threshold(checkpoint, sequence, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["-", checkpoint, sequence["seq"], "--out-dir", out, "--device", "cpu", "--no-draw", "--fps", "12"]
    assert track_main([str(a) for a in [*args, "--tracker", "iou", "--score-thr", "1"]]) == 0
    text = capsys.readouterr().out
    assert "no track: the detector found nothing above --score-thr 1: its best score was 0." in text
    report = json.loads((out / "seq.json").read_text())
    assert report["fps"] == 12.0 and report["boxes"] == 0 and 0 < report["max_score"] < 1


def test_classes_tracks_only_the_classes_named(checkpoint, sequence, tmp_path, capsys):
    # the tiny detector's confident boxes are circles: with --classes rectangle none reaches the tracker
    out = tmp_path / "out"
    args = ["-", checkpoint, sequence["frames"], "--out-dir", out, "--device", "cpu", "--no-draw"]
    assert track_main([str(a) for a in [*args, "--classes", "Rectangle", "--score-thr", "0.6"]]) == 0
    text = capsys.readouterr().out
    report = json.loads((out / "seq.json").read_text())
    assert report["options"]["classes"] == ["rectangle"] and report["boxes"] == 0 and not report["tracks"]
    assert "no track: the detector found nothing of --classes rectangle above" in text
    assert (out / "seq.txt").read_text() == ""


def test_a_class_the_model_lacks_is_one_line(checkpoint, sequence, tmp_path, capsys):
    err = refused(capsys, ["-", checkpoint, sequence["frames"], "--out-dir", tmp_path / "o", "--classes", "circel"])
    assert "--classes: the model has no class 'circel' (nearest: circle)" in err
    assert not (tmp_path / "o" / "seq.json").exists()


def test_videos_after_classes_are_named_with_the_fix(checkpoint, sequence, tmp_path, capsys):
    err = refused(capsys, ["-", checkpoint, "--classes", "circle", sequence["frames"], "--out-dir", tmp_path / "o"])
    assert f"--classes took {sequence['frames']}, a file or folder, as a class" in err and "--classes=person,car" in err


def test_files_of_the_users_in_out_dir_are_refused_and_a_track_runs_own_replaced(
    checkpoint, sequence, tmp_path, capsys
):
    """As infer: an --out-dir holding files of the user's under the output names is refused (exit 2, nothing
    written); the files an earlier track run wrote there (its JSON's ``outputs``) are replaced, a drawn video
    of a run before a --no-draw run included."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "seq.txt").write_text("my notes\n")
    (out / "seq.mp4").write_bytes(b"my video")
    args = ["-", checkpoint, sequence["seq"], "--out-dir", out, "--device", "cpu", "--score-thr", "0.6"]
    err = refused(capsys, args)
    assert f"--out-dir {out} holds seq.txt, seq.mp4, which this run would replace" in err
    assert (out / "seq.txt").read_text() == "my notes\n" and (out / "seq.mp4").read_bytes() == b"my video"
    assert not (out / "seq.json").exists()
    (out / "seq.txt").unlink()
    (out / "seq.mp4").unlink()
    for extra in ([], [], ["--no-draw"], []):  # a run over its own outputs, drawn or not
        assert track_main([str(a) for a in [*args, *extra]]) == 0, capsys.readouterr().err
    capsys.readouterr()  # (the unreadable frame's warnings)
    report = json.loads((out / "seq.json").read_text())
    assert report["outputs"] == ["seq.json", "seq.mp4", "seq.txt"]
    (out / "seq.json").write_text("{}")  # now a JSON of the user's: the names are not track's any more
    assert "holds seq.txt, seq.json, seq.mp4" in refused(capsys, args)
    assert (out / "seq.json").read_text() == "{}"
