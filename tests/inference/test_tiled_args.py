"""Tile arguments of the API (``detkit.predict(tile=...)``) and numpy inputs of other dtypes: one clear
ValueError for each mistake (no TypeError traceback, no silent truncation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import detkit
from detkit.inference.inputs import numpy_to_uint8
from detkit.inference.tiling import TileOptions, parse_tile


class Recorder(nn.Module):
    """Records the uint8 batches it is given; detects nothing."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.seen: list[torch.Tensor] = []

    def predict(self, batch: dict, score_thr: float | None = None) -> list[dict]:
        self.seen.append(batch["images"].clone())
        empty = {"boxes": torch.zeros((0, 4)), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}
        return [dict(empty) for _ in batch["images"]]


def test_tile_sizes_and_overlaps():
    assert parse_tile({"size": 320, "overlap": (0.2, 0.2)}) == TileOptions(size=(320, 320), overlap=0.2)
    assert parse_tile((320.0, 480)).size == (320, 480)  # a whole number written as a float
    with pytest.raises(ValueError, match=r"one fraction in \[0, 1\) for both axes.*\(0.2, 0.3\)"):
        parse_tile({"size": 320, "overlap": (0.2, 0.3)})  # was a TypeError traceback
    with pytest.raises(ValueError, match=r"whole numbers of pixels.*320.7 is not one"):
        parse_tile((320.7, 320))  # was silently truncated to 320
    with pytest.raises(ValueError, match=r"H,W \(two numbers.*'320,320,3'"):
        parse_tile("320,320,3")  # was "at least 32 px"
    with pytest.raises(ValueError, match="64 px of a 320 tile is 0.2"):
        parse_tile("320,320", overlap=64)
    with pytest.raises(ValueError, match="at least 32 px"):
        parse_tile("16")


def test_predict_names_itself_in_tile_errors():
    model = Recorder()
    image = np.zeros((64, 64, 3), np.uint8)
    assert detkit.predict(model, image, tile={"size": 32, "overlap": (0.25, 0.25)})["boxes"].shape == (0, 4)
    with pytest.raises(ValueError, match=r"^predict: tile size must be whole numbers"):
        detkit.predict(model, image, tile=(320.7, 320))


def test_numpy_images_of_other_dtypes():
    base = np.arange(0, 256, dtype=np.uint8).reshape(16, 16)
    rgb = np.stack([base, base[::-1], base.T], axis=2)
    assert np.array_equal(numpy_to_uint8(rgb.astype(np.uint16) << 8), rgb)  # 16-bit: the high byte, as files
    assert np.array_equal(numpy_to_uint8(rgb.astype(np.float32)), rgb)  # float 0..255
    assert np.array_equal(numpy_to_uint8(rgb.astype(np.float64) / 255.0), rgb)  # float 0..1
    assert np.array_equal(numpy_to_uint8(rgb.astype(np.int64)), rgb)
    with pytest.raises(ValueError, match=r"0\.\.1 or 0\.\.255, got -2.1.*normalis.*np.clip"):
        numpy_to_uint8((rgb.astype(np.float32) - 128) / 60)
    with pytest.raises(ValueError, match="NaN"):
        numpy_to_uint8(np.full((4, 4, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="uint8, uint16 or float"):
        numpy_to_uint8(np.zeros((4, 4, 3), bool))

    model = Recorder()
    for image in (rgb, rgb.astype(np.uint16) << 8, rgb.astype(np.float32) / 255.0):
        detkit.predict(model, image)  # 16-bit and float arrays were refused ("must be uint8")
    assert all(torch.equal(model.seen[0], seen) for seen in model.seen[1:])


def test_an_overlap_that_would_never_end_is_refused():
    """--tile-overlap 0.99 of a 64 px tile stepped 0.64 px: ~10^5 tiles an image, an eval that never ended."""
    from detkit.inference.tile_options import check_overlap

    assert check_overlap(0.9) == 0.9
    with pytest.raises(ValueError, match=r"0.99 is above 0.9: each pixel would be in over 100 tiles \(10000 here\)"):
        check_overlap(0.99)
