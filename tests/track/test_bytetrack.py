"""ByteTracker and the IoU linker on hand-made detections where the right ids are known."""

import numpy as np
import pytest
import torch

from detkit.track import ByteTracker, IoUTracker, link_detections


def det(*boxes, scores=None, labels=None):
    """One frame's detections: boxes xyxy, scores (default 0.9 each), labels (default 0)."""
    boxes = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    n = len(boxes)
    return {
        "boxes": torch.as_tensor(boxes),
        "scores": torch.tensor([0.9] * n if scores is None else scores, dtype=torch.float32),
        "labels": torch.tensor([0] * n if labels is None else labels, dtype=torch.int64),
    }


def square(x, y, side=20):
    return [x, y, x + side, y + side]


def ids_of(frames):
    return [r["ids"].tolist() for r in frames]


def crossing(frames=24, hidden=range(10, 13)):
    """A moves right at 3 px/frame, B left at 2 px/frame, 6 px lower, B in front: while they overlap (``hidden``)
    only B is detected. Returns the detections and, per frame, the index of A among them (None when hidden)."""
    out, a_index = [], []
    for t in range(frames):
        a, b = square(10 + 3 * t, 50), square(80 - 2 * t, 56)
        if t in hidden:
            out.append(det(b))
            a_index.append(None)
        else:
            order = (b, a) if t % 2 else (a, b)  # the detector's order carries no identity
            out.append(det(*order))
            a_index.append(order.index(a))
    return out, a_index


def test_crossing_objects_keep_their_ids_through_an_occlusion():
    dets, a_index = crossing()
    frames = link_detections(dets, "bytetrack")
    for t, (r, ia) in enumerate(zip(frames, a_index)):
        if ia is None:
            assert r["ids"].tolist() == [2], t  # A hidden: only B, with its own id
        else:
            assert r["ids"].tolist() == [1, 2], t
            assert id_near(r, dets[t]["boxes"][ia]) == 1, t  # and id 1 is A's box, before and after


def id_near(frame, box):
    """The id of the track whose box is closest to ``box``."""
    return int(frame["ids"][(frame["boxes"] - box).abs().sum(1).argmin()])


def test_iou_linker_loses_the_hidden_object():
    dets, _ = crossing()
    frames = link_detections(dets, "iou")
    assert max(max(ids, default=0) for ids in ids_of(frames)) >= 3  # A comes back under a new id
    assert ids_of(frames)[0] == [1, 2]


def test_missed_frame_track_survives_with_its_id():
    dets = [det(square(10 + 4 * t, 30)) if t != 5 else det() for t in range(10)]
    byte = ids_of(link_detections(dets, "bytetrack"))
    assert byte == [[1]] * 5 + [[]] + [[1]] * 4
    iou = ids_of(link_detections(dets, "iou"))
    assert iou == [[1]] * 5 + [[]] + [[2]] * 4


def test_low_score_detection_recovered_by_the_second_pass():
    scores = [0.9] * 4 + [0.3, 0.25] + [0.9] * 4
    dets = [det(square(20 + 2 * t, 20), scores=[s]) for t, s in enumerate(scores)]
    dets[2] = det(square(24, 20), [200, 200, 220, 220], scores=[0.9, 0.3])  # a lone low score starts nothing
    frames = link_detections(dets, "bytetrack", high_thr=0.5, low_thr=0.1)
    assert ids_of(frames) == [[1]] * 10
    assert frames[4]["scores"].tolist() == pytest.approx([0.3])
    iou = ids_of(link_detections(dets, "iou", score_thr=0.5))
    assert iou[4] == [] and iou[6] == [2]


def test_one_frame_detection_is_never_confirmed_and_ids_stay_consecutive():
    dets = [det(square(10, 10)) for _ in range(6)]
    dets[2] = det(square(10, 10), square(150, 150))  # a false detection in one frame only
    dets[4] = det(square(10, 10), square(90, 90))  # a new object that stays
    dets[5] = det(square(10, 10), square(90, 90))
    assert ids_of(link_detections(dets, "bytetrack")) == [[1], [1], [1], [1], [1], [1, 2]]


@pytest.mark.parametrize("gap,same", [(3, True), (6, False)])
def test_lost_track_kept_track_buffer_frames(gap, same):
    dets = [det(square(40, 40))] * 4 + [det()] * gap + [det(square(40, 40))] * 3
    frames = link_detections(dets, ByteTracker(track_buffer=4))
    last = frames[-1]["ids"].tolist()
    assert last == ([1] if same else [2])


def test_label_is_the_class_with_most_score_and_boxes_follow_the_detections():
    dets = [det(square(30, 30), labels=[2]) for _ in range(5)]
    dets[3] = det(square(30, 30), labels=[1], scores=[0.6])
    frames = link_detections(dets, "bytetrack")
    assert [r["labels"].tolist() for r in frames] == [[2]] * 5
    torch.testing.assert_close(
        frames[-1]["boxes"][0], torch.tensor(square(30, 30), dtype=torch.float32), atol=0.5, rtol=0
    )


def test_a_tracker_object_keeps_its_state_across_calls_and_a_name_starts_fresh():
    """Fed frame by frame (Ultralytics' ``persist=True`` habit), a tracker object keeps its ids; a name builds a new
    tracker each call; ``reset()`` starts a new video."""
    dets = [det(square(10 + 3 * t, 10), *([square(100, 100 - 2 * t)] if t >= 3 else [])) for t in range(6)]
    whole = ids_of(link_detections(dets, ByteTracker()))
    tracker = ByteTracker()
    one_by_one = [ids_of(link_detections([d], tracker))[0] for d in dets]
    assert one_by_one == whole == [[1]] * 4 + [[1, 2]] * 2  # B is confirmed in its second frame, not its first
    assert ids_of(link_detections(dets[3:4], "bytetrack")) == [[1, 2]]  # a name: a fresh tracker (frame 1)
    tracker = IoUTracker()
    link_detections([det(square(0, 0))], tracker)
    assert ids_of(link_detections([det(square(50, 50))], tracker)) == [[2]]  # a new object: the next id
    tracker.reset()
    assert ids_of(link_detections([det(square(50, 50))], tracker)) == [[1]]  # a new video restarts the ids
    with pytest.raises(ValueError, match="with a built tracker"):
        link_detections([], tracker, score_thr=0.3)


def test_bad_options_and_detections_are_refused_with_clear_messages():
    with pytest.raises(ValueError, match="low_thr"):
        ByteTracker(high_thr=0.3, low_thr=0.5)
    with pytest.raises(ValueError, match="match_iou"):
        ByteTracker(match_iou=1.5)
    with pytest.raises(ValueError, match="unknown tracker"):
        link_detections([], "sort")
    with pytest.raises(ValueError, match="disagree"):
        ByteTracker().update(torch.zeros(2, 4), torch.zeros(1), torch.zeros(2))
    with pytest.raises(TypeError, match=r"boxes is None; .* torch.zeros\(\(0, 4\)\)"):
        ByteTracker().update(None, None, None)
    with pytest.raises(TypeError, match="labels is None; .*zeros for a one-class detector"):
        IoUTracker().update(torch.zeros(1, 4), torch.ones(1), None)
    with pytest.raises(ValueError, match=r"boxes must be \[N,4\] xyxy, got shape \(2, 8\)"):
        ByteTracker().update(torch.zeros(2, 8), torch.zeros(4), torch.zeros(4))
    empty = ByteTracker().update([], [], [])  # a frame without detections
    assert empty["ids"].shape == (0,) and empty["boxes"].shape == (0, 4)


def test_one_object_reported_under_two_classes_is_one_track_after_agnostic_nms():
    dets = [det(square(10 + t, 10), square(10 + t, 11), scores=[0.9, 0.8], labels=[0, 2]) for t in range(4)]
    assert ids_of(link_detections(dets, "bytetrack")) == [[1]] * 4  # nms_iou 0.7 by default, as detkit.track
    assert ids_of(link_detections(dets, "bytetrack", nms_iou=None)) == [[1, 2]] * 4  # without it: a twin track


def test_score_fusion_needs_scores_above_match_iou():
    """IoU x score < match_iou for every pair of a detector scoring 0.15: fused, no track is ever confirmed."""
    dets = [det(square(10 + 2 * t, 10), scores=[0.15]) for t in range(5)]
    assert ids_of(link_detections(dets, ByteTracker(high_thr=0.1, low_thr=0.05))) == [[1]] + [[]] * 4
    assert ids_of(link_detections(dets, ByteTracker(high_thr=0.1, low_thr=0.05, fuse_score=False))) == [[1]] * 5
