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

    def predict(model, images, score_thr=None, batch_size=1):
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
    with pytest.raises(TypeError, match="persist is Ultralytics' option; pass a tracker object"):
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
