"""The synthetic tracking sequence: deterministic, ground truth that follows constant velocities, crossing
paths and a shape hidden behind the static one."""

import numpy as np
import pytest

from detkit.data.synthetic_track import MIN_VISIBLE, make_shapes_track, render_track_sequence


def rows_by_id(rows):
    out = {}
    for r in rows:
        out.setdefault(r[1], []).append(r)
    return out


@pytest.fixture(scope="module")
def sequence():
    return render_track_sequence(seed=3, num_frames=60, num_moving=4, size=(160, 160))


def test_same_seed_same_sequence_other_seed_other(sequence):
    frames, rows = render_track_sequence(seed=3, num_frames=60, num_moving=4, size=(160, 160))
    assert rows == sequence[1] and all(np.array_equal(a, b) for a, b in zip(frames, sequence[0]))
    assert render_track_sequence(seed=4, num_frames=60, num_moving=4, size=(160, 160))[1] != rows


def test_moving_shapes_keep_a_constant_velocity_and_the_occluder_stands_still(sequence):
    frames, rows = sequence
    assert len(frames) == 60 and frames[0].shape == (160, 160, 3)
    tracks = rows_by_id(rows)
    assert sorted(tracks) == [1, 2, 3, 4, 5]
    for tid, track in tracks.items():
        inside = [r for r in track if r[2] > 0 and r[3] > 0 and r[2] + r[4] < 160 and r[3] + r[5] < 160]
        centres = np.array([[r[0], r[2] + r[4] / 2, r[3] + r[5] / 2] for r in inside])
        steps = np.diff(centres[:, 1:], axis=0) / np.diff(centres[:, :1], axis=0)
        speed = np.linalg.norm(steps, axis=1)
        assert np.ptp(steps, axis=0).max() < 0.05, tid  # the same step every frame (whole box in view)
        assert (speed < 0.01).all() if tid == 5 else ((speed > 1.9) & (speed < 4.1)).all(), tid


def test_paths_cross_and_the_first_shape_is_hidden_for_a_while(sequence):
    _, rows = sequence
    tracks = rows_by_id(rows)
    boxes = {tid: {r[0]: np.array([r[2], r[3], r[2] + r[4], r[3] + r[5]]) for r in t} for tid, t in tracks.items()}

    def overlap(a, b):
        return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))

    crossing = [
        (i, j)
        for i in range(1, 5)
        for j in range(i + 1, 5)
        if any(overlap(boxes[i][f], boxes[j][f]) > 0 for f in set(boxes[i]) & set(boxes[j]))
    ]
    assert len(crossing) >= 2  # the two pairs meet
    hidden = [f for f in range(1, 61) if f not in boxes[1] or next(r for r in tracks[1] if r[0] == f)[6] == 0]
    visible = [r[0] for r in tracks[1] if r[6] == 1]
    assert any(min(visible) < f < max(visible) for f in hidden)  # lost in the middle, then seen again
    assert all((r[8] >= MIN_VISIBLE) == (r[6] == 1) for r in rows)


def test_files_in_the_mot_layout(tmp_path):
    paths = make_shapes_track(tmp_path / "seq", num_frames=5, num_moving=2, size=(128, 128))
    assert len(list(paths["frames"].glob("*.png"))) == 5 and paths["video"].stat().st_size > 0
    lines = paths["gt"].read_text().splitlines()
    assert lines and all(len(line.split(",")) == 9 for line in lines)
    assert "seqLength=5" in paths["seqinfo"].read_text()
    with pytest.raises(ValueError, match="128x128"):
        make_shapes_track(tmp_path / "small", size=(64, 64))
