"""detkit.utils.file_match: files matched to annotation records by their longest common path suffix."""

from pathlib import Path

from detkit.utils.file_match import lookup, suffix_index


def test_longest_suffix_wins_and_same_names_in_two_folders_stay_apart():
    index = suffix_index([("train/a.png", 1), ("val/a.png", 2), ("./sub/b.jpg", 3), ("images\\c.jpg", 4)])
    assert lookup(index, Path("/data/val/a.png")) == 2
    assert lookup(index, "/data/train/a.png") == 1
    assert lookup(index, "elsewhere/a.png") == 1  # the base name alone: the first record that has it
    assert lookup(index, "/x/sub/b.jpg") == 3 and lookup(index, "b.jpg") == 3
    assert lookup(index, "/y/images/c.jpg") == 4  # a Windows separator in the json
    assert lookup(index, "/x/d.png") is None
