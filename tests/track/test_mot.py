"""MOT files: the line format detkit writes, and motmetrics' figures on a small case counted by hand."""

import warnings

import pytest
import torch

from detkit.track import mot_lines, mot_metrics, write_mot
from detkit.track.mot import read_gt, read_mot


def frame(ids, boxes, scores):
    return {
        "ids": torch.tensor(ids, dtype=torch.int64),
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "scores": torch.tensor(scores, dtype=torch.float32),
        "labels": torch.zeros(len(ids), dtype=torch.int64),
    }


def test_mot_lines_frames_from_one_xywh_score_and_three_minus_ones(tmp_path):
    frames = [
        frame([1, 2], [[10, 20, 40, 60], [0.5, 1, 2.5, 4]], [0.9, 0.25]),
        frame([], [], []),
        frame([3], [[5, 5, 6, 7]], [1.0]),
    ]
    assert mot_lines(frames) == [
        "1,1,10.00,20.00,30.00,40.00,0.9000,-1,-1,-1",
        "1,2,0.50,1.00,2.00,3.00,0.2500,-1,-1,-1",
        "3,3,5.00,5.00,1.00,2.00,1.0000,-1,-1,-1",
    ]
    path = write_mot(tmp_path / "t.txt", frames)
    assert path.read_text().splitlines() == mot_lines(frames)
    assert not list(tmp_path.glob(".*"))  # no temporary file left


A = [[0, 0, 10, 10], [2, 0, 12, 10], [4, 0, 14, 10], [6, 0, 16, 10]]  # object 1, frames 1-4
B = [[50, 50, 60, 60], [50, 52, 60, 62], [50, 54, 60, 64], [50, 56, 60, 66]]  # object 2


def gt_lines():
    lines = []
    for t in range(4):
        for oid, boxes in ((1, A), (2, B)):
            x0, y0, x1, y1 = boxes[t]
            lines.append(f"{t + 1},{oid},{x0},{y0},{x1 - x0},{y1 - y0},1,1,1.0")
        lines.append(f"{t + 1},3,100,100,10,10,0,1,0.1")  # flagged 0: ignored, so never a miss
    return lines


def test_metrics_on_a_case_counted_by_hand(tmp_path):
    """7 matches, 1 miss (object 2 in frame 4), 1 false positive, 1 switch (object 2: id 2 -> id 3 in frame 3).

    MOTA = 1 - (FN + FP + IDSW) / GT = 1 - 3/8. IDF1: the best one-to-one pairing is 1-1 (4 boxes) and 2-2 (2 boxes),
    IDTP = 6 of 8 ground-truth and 8 predicted boxes: 2 * 6 / 16.
    """
    gt = tmp_path / "gt.txt"
    gt.write_text("\n".join(gt_lines()) + "\n")
    hyp = [
        frame([1, 2], [A[0], B[0]], [0.9, 0.9]),
        frame([1, 2], [A[1], B[1]], [0.9, 0.9]),
        frame([1, 3], [A[2], B[2]], [0.9, 0.9]),
        frame([1, 4], [A[3], [200, 200, 210, 210]], [0.9, 0.9]),
    ]
    m = mot_metrics(gt, write_mot(tmp_path / "hyp.txt", hyp))
    assert m["mot/MOTA"] == pytest.approx(1 - 3 / 8)
    assert m["mot/IDF1"] == pytest.approx(12 / 16)
    assert (m["mot/IDSW"], m["mot/FP"], m["mot/FN"], m["mot/GT_boxes"], m["mot/GT_ids"]) == (1, 1, 1, 8, 2)
    perfect = [frame([1, 2], [A[t], B[t]], [0.9, 0.9]) for t in range(4)]
    m = mot_metrics(gt, write_mot(tmp_path / "perfect.txt", perfect))
    assert m["mot/MOTA"] == pytest.approx(1.0) and m["mot/IDF1"] == pytest.approx(1.0)


def test_min_iou_decides_a_match_and_an_empty_result_misses_everything(tmp_path):
    gt = tmp_path / "gt.txt"
    gt.write_text("\n".join(gt_lines()) + "\n")
    shifted = [frame([1], [[a[0] + 4, a[1], a[2] + 4, a[3]]], [0.9]) for a in A]  # IoU 6/14 = 0.43 with object 1
    hyp = write_mot(tmp_path / "shifted.txt", shifted)
    assert mot_metrics(gt, hyp, min_iou=0.5)["mot/FP"] == 4
    assert mot_metrics(gt, hyp, min_iou=0.4)["mot/FP"] == 0
    empty = write_mot(tmp_path / "empty.txt", [frame([], [], [])])
    m = mot_metrics(gt, empty)
    assert (m["mot/FN"], m["mot/MOTA"]) == (8, 0.0)


def test_bad_files_name_the_file(tmp_path):
    gt = tmp_path / "gt.txt"
    gt.write_text("\n".join(gt_lines()) + "\n")
    bad = tmp_path / "bad.txt"
    bad.write_text("1,1,10\n")
    with pytest.raises(ValueError, match="bad.txt"):
        mot_metrics(gt, bad)
    flagged = tmp_path / "flagged.txt"
    flagged.write_text("1,1,0,0,10,10,0,1,1\n")
    with pytest.raises(ValueError, match="no box"):
        mot_metrics(flagged, bad)


def test_rows_of_mixed_widths_are_padded_with_the_defaults(tmp_path):
    """A 6-number row among 9-number rows keeps its box, counted (consider 1), and the others keep their flag."""
    path = tmp_path / "gt.txt"
    path.write_text("1,1,0,0,10,10,1,1,1\n1,2,20,20,10,10,0,1,0.1\n1,3,40,40,10,10\n2 1 1 0 10 10\n")
    rows = read_mot(path)
    assert rows.shape == (4, 9)
    assert rows[:, 6].tolist() == [1, 0, 1, 1] and rows[2, 7:].tolist() == [-1, -1]
    assert read_gt(path)[:, 1].tolist() == [1, 3, 1]  # only the row flagged 0 is dropped
    six = tmp_path / "six.txt"
    six.write_text("1,1,0,0,10,10\n")
    assert read_mot(six).shape == (1, 6) and len(read_gt(six)) == 1


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "holds no box to score: the file has no line"),
        ("\n\n", "holds no box to score: the file has no line"),
        ("frame,id,x,y,w,h,conf\n1,1,0,0,10,10,1\n", r"line 1: 'frame,id,x,y,w,h,conf' is not a MOT line"),
        ("1,1,0,0,10,10,0\n2,1,0,0,10,10,0\n", r"each of its 2 lines has consider \(7th field\) 0"),
    ],
)
def test_a_ground_truth_without_boxes_is_refused(tmp_path, text, message):
    path = tmp_path / "gt.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_gt(path)


def test_frame_zero_and_frame_ranges_that_barely_overlap_are_warned_about(tmp_path):
    gt = tmp_path / "gt.txt"
    gt.write_text("\n".join(gt_lines()) + "\n")
    hyp = write_mot(tmp_path / "hyp.txt", [frame([1], [a], [0.9]) for a in A])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # frames 1-4 against 1-4: no warning
        mot_metrics(gt, hyp)
        late = [frame([], [], [])] * 2 + [frame([1], [A[2]], [0.9])]  # a result within the ground truth's range
        mot_metrics(gt, write_mot(tmp_path / "late.txt", late))
    shifted = tmp_path / "from0.txt"
    shifted.write_text("\n".join(f"{int(x.split(',')[0]) - 1},{x.split(',', 1)[1]}" for x in gt_lines()) + "\n")
    with pytest.warns(UserWarning, match="has frame 0, but MOT frames count from 1"):
        mot_metrics(shifted, hyp)
    offset = tmp_path / "offset.txt"
    offset.write_text("\n".join(f"{int(x.split(',')[0]) + 1000},{x.split(',', 1)[1]}" for x in gt_lines()) + "\n")
    with pytest.warns(UserWarning, match=r"covers frames 1001-1004 and the result frames 1-4: they barely overlap"):
        assert mot_metrics(offset, hyp)["mot/FN"] == 8
