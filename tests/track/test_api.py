"""``detkit.track``: a tracker object carries its ids across calls (frame-by-frame use), ``stream=True`` yields
each frame's tracks before the input ends, a ``None`` frame is a frame without detections, and ``classes=`` keeps
only those classes' detections (no id spent on the others)."""

import itertools

import numpy as np
import pytest
import torch

import detkit
from detkit.config import load_config
from detkit.track import ByteTracker


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    small = "model.backbone={type: CSPDarknet, depth_multiple: 0.33, width_multiple: 0.125}"
    cfg = load_config("yolo_n_shapes", [small, "data.val.pipeline=[{type: LetterBox, size: 64}]"])
    return detkit.build_model(cfg, class_names=["a", "b"]).eval()


def scripted(monkeypatch):
    """Replace the detector by scripted detections: in frame t (the image's value) object A (class 0, ``a``) moves
    right, and object B (class 1, ``b``) is there from frame 3 on. Returns the frames (64 x 64 images filled
    with t)."""

    def predict(model, images, score_thr=None, batch_size=1, channel_order="rgb"):
        out = []
        for image in images:
            t = int(image[0, 0, 0])
            boxes = [[4 + 2 * t, 4, 20 + 2 * t, 20]] + ([[40, 40, 56, 56]] if t >= 3 else [])
            n = len(boxes)
            out.append({"boxes": torch.tensor(boxes, dtype=torch.float32), "scores": torch.full((n,), 0.9)})
            out[-1]["labels"] = torch.arange(n, dtype=torch.int64)
        return out

    monkeypatch.setattr(detkit, "predict", predict)
    return [np.full((64, 64, 3), t, np.uint8) for t in range(6)]


def ids(results):
    return [r["ids"].tolist() for r in results]


def test_a_tracker_object_follows_the_ids_when_called_once_per_frame(model, monkeypatch):
    frames = scripted(monkeypatch)
    whole = ids(detkit.track(model, frames))
    tracker = ByteTracker()
    per_frame = [ids(detkit.track(model, [f], tracker=tracker))[0] for f in frames]  # Ultralytics' persist habit
    assert per_frame == whole == [[1]] * 4 + [[1, 2]] * 2
    assert ids(detkit.track(model, frames[3:4])) == [[1, 2]]  # a tracker name: a fresh tracker on each call
    with pytest.raises(TypeError, match=r"persist: pass a tracker object \(tracker=ByteTracker\(\)\)"):
        detkit.track(model, frames, persist=True)


def test_none_frames_have_no_detections_and_keep_the_numbering(model, monkeypatch):
    frames = scripted(monkeypatch)
    frames[1] = None  # an unreadable frame: A is missed there, and found again under its id
    assert ids(detkit.track(model, frames, batch_size=2)) == [[1], [], [1], [1], [1, 2], [1, 2]]


def test_stream_yields_each_frame_before_the_input_ends(model):
    read = []

    def endless():  # a live source: it never ends
        for t in itertools.count():
            read.append(t)
            yield np.full((48, 64, 3), 90, np.uint8)

    results = detkit.track(model, endless(), stream=True, high_thr=0.3, low_thr=0.1)
    first = next(results)
    assert set(first) == {"ids", "boxes", "scores", "labels"} and len(read) == 1
    assert len(list(itertools.islice(results, 2))) == 2 and len(read) == 3
    with pytest.raises(TypeError, match="frames must be a video file"):  # arguments are checked at the call
        detkit.track(model, 3, stream=True)


def test_classes_keeps_only_those_detections_before_linking(model, monkeypatch):
    frames = scripted(monkeypatch)
    assert ids(detkit.track(model, frames)) == [[1]] * 4 + [[1, 2]] * 2  # B (confirmed in frame 4) takes id 2
    only_b = detkit.track(model, frames, classes=["B"])  # a name, in any case
    assert ids(only_b) == [[]] * 4 + [[1]] * 2  # B's track is the first: A's detections took no id
    assert {label for r in only_b for label in r["labels"].tolist()} == {1}
    assert ids(detkit.track(model, frames, classes=0)) == [[1]] * 6  # an index
    assert ids(detkit.track(model, frames, classes=["a", 1])) == ids(detkit.track(model, frames))


@pytest.mark.parametrize(
    "classes, error, message",
    [
        (["c"], ValueError, "classes: the model has no class 'c' (it has 0 a, 1 b)"),
        ([2], ValueError, "classes: index 2 is not a class of the model (2 classes: 0 a, 1 b)"),
        ([], ValueError, "classes: an empty list would track nothing"),
        ([1.5], TypeError, "classes: a class is a name or an index, got float 1.5"),
    ],
)
def test_classes_the_model_lacks_are_refused_at_the_call(model, classes, error, message):
    with pytest.raises(error) as e:
        detkit.track(model, [np.zeros((64, 64, 3), np.uint8)], classes=classes, stream=True)
    assert str(e.value).startswith(message)


def test_score_thr_is_the_clis_threshold_for_either_tracker(model, monkeypatch):
    """``score_thr`` (the CLI's --score-thr) is ByteTrack's high_thr and the IoU linker's score_thr: the scripted
    detections score 0.9, so above it no track starts."""
    frames = scripted(monkeypatch)
    assert ids(detkit.track(model, frames, score_thr=0.8)) == ids(detkit.track(model, frames))
    assert ids(detkit.track(model, frames, score_thr=0.95, low_thr=0.5)) == [[]] * 6
    assert ids(detkit.track(model, frames, tracker="iou", score_thr=0.95)) == [[]] * 6
    assert ids(detkit.track(model, frames, tracker="iou", score_thr=0.5))[-1] == [1, 2]
    with pytest.raises(ValueError, match=r"score_thr 0.05 is below ByteTrack's low_thr 0.1 .*low_thr=0.025"):
        detkit.track(model, frames, score_thr=0.05)
    with pytest.raises(TypeError, match="score_thr and high_thr are one setting"):
        detkit.track(model, frames, score_thr=0.5, high_thr=0.6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"conf": 0.3}, r"conf: score_thr= \(the tracker's confident detections"),
        ({"iou": 0.5}, r"iou: nms_iou= \(the class-agnostic NMS before linking"),
        ({"imgsz": 640}, r"imgsz: the input size is the config's test pipeline"),
        ({"vid_stride": 2}, r"vid_stride: not offered: .*itertools.islice"),
        ({"show": True}, r"show: not offered: draw with detkit.track.TrackDrawer"),
        ({"conf": 0.2, "nonsense": 1}, r"'conf', 'nonsense'.*\n  conf: score_thr=.*\n  nonsense: not an argument"),
        ({"tracker": "iou", "high_thr": 0.4}, r"high_thr: not an argument of track nor of IoUTracker"),
    ],
)
def test_ultralytics_keywords_name_detkits_equivalent(model, kwargs, match):
    with pytest.raises(TypeError, match=r"track\(\) got unexpected keyword argument\(s\) (.|\n)*" + match):
        detkit.track(model, [np.zeros((64, 64, 3), np.uint8)], **kwargs)


def test_an_ultralytics_tracker_file_names_detkits_tracker(model):
    for name, match in (("bytetrack.yaml", "tracker='bytetrack'"), ("botsort.yaml", "BoT-SORT is not in detkit")):
        with pytest.raises(ValueError, match=f"tracker='{name}' is Ultralytics' tracker file; .*{match}"):
            detkit.track(model, [np.zeros((64, 64, 3), np.uint8)], tracker=name)


def colour_scripted(monkeypatch):
    """Scripted detections read from the frame as ``detkit.predict`` converts it (``channel_order`` included): a
    box in the column of the frame's red value. Returns RGB frames whose red moves (blue stays 200)."""
    from detkit.inference.runner import to_rgb_array

    def predict(model, images, score_thr=None, batch_size=1, channel_order="rgb"):
        out = []
        for image in images:
            x = float(to_rgb_array(image, channel_order)[0, 0, 0]) / 4
            boxes = torch.tensor([[x, 4.0, x + 12, 16.0]])
            out.append({"boxes": boxes, "scores": torch.full((1,), 0.9), "labels": torch.zeros(1, dtype=torch.int64)})
        return out

    monkeypatch.setattr(detkit, "predict", predict)
    return [np.dstack([np.full((64, 64), v, np.uint8) for v in (8 * t, 100, 200)]) for t in range(5)]


def test_channel_order_bgr_reads_opencv_frames_and_a_folder_is_rgb(model, monkeypatch, tmp_path):
    """BGR frames (cv2) tracked with channel_order='bgr' give the RGB frames' tracks, and without it other ones;
    the frames of a folder are RGB already (channel_order does not apply to them)."""
    import cv2

    rgb = colour_scripted(monkeypatch)
    bgr = [f[..., ::-1].copy() for f in rgb]
    want = detkit.track(model, rgb)
    got = detkit.track(model, bgr, channel_order="BGR")
    assert [r["boxes"].tolist() for r in got] == [r["boxes"].tolist() for r in want]
    assert [r["boxes"].tolist() for r in detkit.track(model, bgr)] != [r["boxes"].tolist() for r in want]
    for t, frame in enumerate(bgr):
        cv2.imwrite(str(tmp_path / f"f{t}.png"), frame)  # OpenCV writes BGR arrays
    folder = detkit.track(model, tmp_path, channel_order="bgr")
    assert [r["boxes"].tolist() for r in folder] == [r["boxes"].tolist() for r in want]
    with pytest.raises(ValueError, match="track: channel_order must be 'rgb' or 'bgr'"):
        detkit.track(model, rgb, channel_order="hsv")
