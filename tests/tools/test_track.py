"""tools/track.py on a tiny generated sequence with a tiny random detector: the outputs (drawn video, MOT file,
JSON, metrics against the ground truth) agree with each other and with detkit.track; mistakes are exit 2."""

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

import detkit
from detkit.cli.track import main as track_main  # what tools/track.py runs
from detkit.data.synthetic_track import make_shapes_track
from detkit.track import mot_lines, mot_metrics

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "track"))
from tiny_detector import save_tiny_detector  # noqa: E402

MOT_LINE = re.compile(r"\d+,\d+,-?\d+\.\d\d,-?\d+\.\d\d,\d+\.\d\d,\d+\.\d\d,\d\.\d{4},-1,-1,-1")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_detector(tmp_path_factory.mktemp("ckpt") / "model.pth")


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    return make_shapes_track(tmp_path_factory.mktemp("seq") / "seq", num_frames=8, num_moving=2, size=(128, 128))


def _frames(path):
    """Frames OpenCV decodes from a video."""
    cap, count = cv2.VideoCapture(str(path)), 0
    while cap.grab():
        count += 1
    cap.release()
    return count


def test_folder_of_frames_with_ground_truth(checkpoint, sequence, tmp_path):
    out = tmp_path / "out"
    args = ["-", checkpoint, sequence["frames"], "--out-dir", out, "--gt", sequence["gt"], "--score-thr", "0.6"]
    r = subprocess.run(
        [sys.executable, str(ROOT / "tools/track.py"), *map(str, args), "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert r.returncode == 0, r.stderr
    stem = "seq"  # an img1/ folder is named after its sequence
    assert {p.name for p in out.iterdir()} == {f"{stem}.mp4", f"{stem}.txt", f"{stem}.json"}
    assert _frames(out / f"{stem}.mp4") == 8
    lines = (out / f"{stem}.txt").read_text().splitlines()
    assert lines and all(MOT_LINE.fullmatch(line) for line in lines)
    assert {int(line.split(",")[0]) for line in lines} <= set(range(1, 9))
    report = json.loads((out / f"{stem}.json").read_text())
    assert report["frames"] == 8 and report["tracker"] == "bytetrack" and report["options"]["high_thr"] == 0.6
    assert report["boxes"] == len(lines) == sum(len(f["tracks"]) for f in report["per_frame"])
    assert sorted(t["id"] for t in report["tracks"]) == sorted({int(line.split(",")[1]) for line in lines})
    assert report["metrics"] == mot_metrics(sequence["gt"], out / f"{stem}.txt")
    assert f"MOTA {report['metrics']['mot/MOTA']:.3f}" in r.stdout

    # the library gives the same tracks from the same frames
    model = detkit.init_model(None, checkpoint, device="cpu")
    frames = detkit.track(model, sequence["frames"], high_thr=0.6)
    assert mot_lines(frames) == lines


def test_video_with_the_iou_linker_and_no_drawing(checkpoint, sequence, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["-", str(checkpoint), str(sequence["video"]), "--out-dir", str(out), "--tracker", "iou", "--no-draw"]
    assert track_main([*args, "--score-thr", "0.6", "--device", "cpu"]) == 0
    assert {p.name for p in out.iterdir()} == {"video.txt", "video.json"}
    report = json.loads((out / "video.json").read_text())
    assert report["options"] == {"score_thr": 0.6, "match_iou": 0.3, "nms_iou": 0.7, "classes": None}
    assert report["metrics"] is None
    assert "video.txt" in capsys.readouterr().out
    # nothing confident enough: the summary says so, with the best score and what to change
    byte = ["-", str(checkpoint), str(sequence["video"]), "--out-dir", str(out), "--no-draw", "--device", "cpu"]
    assert track_main([*byte, "--score-thr", "0.9999", "--low-thr", "0.9"]) == 0
    out_text = capsys.readouterr().out
    assert "no track: the detector's best score was 0.9" in out_text and "--no-fuse-score" in out_text
    assert track_main([*args, "--score-thr", "0.9999"]) == 0  # the IoU linker asks for nothing under 0.9999
    assert "no track: the detector found nothing above" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--score-thr", "1.5"], "--score-thr must be in [0, 1]"),
        (["--low-thr", "0.8"], "must not exceed --score-thr"),
        (["--track-buffer", "-1"], "--track-buffer must be >= 0"),
    ],
)
def test_bad_numbers_are_usage_errors(checkpoint, sequence, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as e:
        track_main(["-", str(checkpoint), str(sequence["video"]), "--out-dir", str(tmp_path / "o"), *extra])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_bad_inputs_are_one_line_errors(checkpoint, sequence, tmp_path, capsys):
    out = str(tmp_path / "o")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    cases = [
        ([str(tmp_path / "missing.mp4")], "VIDEO not found"),
        ([str(sequence["gt"])], "is not a video"),
        ([str(broken)], "broken.mp4"),
        ([str(sequence["video"]), str(sequence["frames"]), "--gt", str(sequence["gt"])], "one video"),
        ([str(sequence["video"]), "--gt", str(tmp_path / "gt.txt")], "--gt GT_FILE not found"),
    ]
    for inputs, message in cases:
        assert track_main(["-", str(checkpoint), *inputs, "--out-dir", out]) == 2, inputs
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    # outputs written next to the frames could overwrite them: that folder is refused as --out-dir
    assert track_main(["-", str(checkpoint), str(sequence["frames"]), "--out-dir", str(sequence["frames"])]) == 2
    assert "could overwrite inputs" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_make_shapes_task_track_writes_the_sequence_and_guards_out_dir(tmp_path, capsys):
    from detkit.cli.make_shapes import main as make_shapes_main

    out = tmp_path / "seq"
    assert (
        make_shapes_main([str(out), "--task", "track", "--num-frames", "4", "--num-moving", "2", "--size", "128"]) == 0
    )
    assert "ground truth: 3 tracks" in capsys.readouterr().out
    assert len(list((out / "img1").glob("*.png"))) == 4 and (out / "gt" / "gt.txt").is_file()
    assert make_shapes_main([str(out), "--task", "track", "--num-frames", "3", "--size", "128"]) == 0  # rewritten
    assert len(list((out / "img1").glob("*.png"))) == 3
    (out / "notes.txt").write_text("mine")
    assert make_shapes_main([str(out), "--task", "track"]) == 2
    assert "notes.txt" in capsys.readouterr().err and (out / "notes.txt").read_text() == "mine"
    for args in (["--task", "track", "--num-train", "3"], ["--num-frames", "3"]):
        with pytest.raises(SystemExit) as e:
            make_shapes_main([str(tmp_path / "x"), *args])
        assert e.value.code == 2


def test_gt_in_out_dir_is_refused_before_anything_runs(checkpoint, sequence, tmp_path, capsys):
    """A --gt named as an output (<stem>.txt in --out-dir) would be replaced by the tracks and scored against
    them; a --gt elsewhere in --out-dir is refused as any input there is."""
    out = tmp_path / "out"
    out.mkdir()
    gt = out / "seq.txt"  # the name of the sequence's MOT output
    gt.write_bytes(sequence["gt"].read_bytes())
    args = ["-", str(checkpoint), str(sequence["frames"]), "--out-dir", str(out), "--device", "cpu"]
    assert track_main([*args, "--gt", str(gt)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert f"the output {gt} would replace --gt {gt}; choose another --out-dir" in err, err
    assert gt.read_bytes() == sequence["gt"].read_bytes() and [p.name for p in out.iterdir()] == ["seq.txt"]
    gt.rename(out / "mine.txt")
    assert track_main([*args, "--gt", str(out / "mine.txt")]) == 2
    assert f"holds the input {out / 'mine.txt'}" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_inputs_with_one_name_get_one_set_of_outputs_each(checkpoint, sequence, tmp_path, capsys):
    other = tmp_path / "other" / "video.mp4"
    other.parent.mkdir()
    other.write_bytes(sequence["video"].read_bytes())
    out = tmp_path / "out"
    videos = [str(sequence["video"]), str(other), str(sequence["video"])]  # one name; the same video twice
    args = ["-", str(checkpoint), *videos, "--out-dir", str(out), "--score-thr", "0.6", "--device", "cpu"]
    assert track_main(args) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {f"video{s}.{ext}" for s in ("", "_2", "_3") for ext in ("txt", "json", "mp4")}
    texts = {(out / f"video{s}.txt").read_text() for s in ("", "_2", "_3")}
    assert len(texts) == 1  # three complete outputs of one video, none overwritten
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{sequence['video']}: 8 frames") and f"-> {out / 'video.txt'}" in lines[0]
    second = lines.index(next(line for line in lines if line.startswith(f"{other}:")))
    assert f"-> {out / 'video_2.txt'}, {out / 'video_2.json'}, {out / 'video_2.mp4'}" in lines[second]
    assert lines[second + 1] == "  outputs named video_2: an earlier input's are named video"
    assert "  outputs named video_3: an earlier input's are named video" in lines
