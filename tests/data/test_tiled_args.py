"""TiledDataset checks its tile arguments at construction (before reading annotations), as tiled inference does:
one DatasetError line naming the key and the valid range; tiles read in order decode each image once."""

from __future__ import annotations

import pytest

from detkit.data.datasets.tiled import TiledDataset
from detkit.data.problems import DatasetError
from detkit.data.synthetic import make_shapes


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num_train=2, num_val=0, size=(160, 224), seed=3)


def _inner(paths) -> dict:
    return {"type": "CocoDataset", "ann_file": str(paths["train_ann_file"]), "img_dir": str(paths["train_img_dir"])}


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"tile_size": 0}, ["tile_size", "at least 32 px", "got 0"]),  # was a ZeroDivisionError
        ({"tile_size": [-320, 320]}, ["tile_size", "at least 32 px", "[-320, 320]"]),  # trained, then failed in a conv
        ({"tile_size": 16}, ["tile_size", "at least 32 px"]),  # was accepted (17,864 tiles of a 4000x3000 image)
        ({"tile_size": [320.5, 320]}, ["tile_size", "whole numbers", "320.5"]),
        ({"tile_size": [320, 320, 3]}, ["tile_size", "(h, w)", "3 numbers"]),
        ({"tile_size": "320"}, ["tile_size", "(h, w)"]),
        ({"tile_size": 320, "overlap": 64}, ["overlap", "[0, 1)", "64 px of a 320 tile is 0.2"]),
        ({"tile_size": 320, "overlap": -0.1}, ["overlap", "[0, 1)"]),
        ({"tile_size": 320, "overlap": [0.2, 0.3]}, ["overlap", "one fraction"]),
    ],
)
def test_bad_tile_arguments_are_one_line_naming_the_key(kwargs, words, tmp_path):
    missing = {"type": "CocoDataset", "ann_file": str(tmp_path / "none.json"), "img_dir": str(tmp_path)}
    with pytest.raises(DatasetError) as info:  # checked first: the missing annotation file is not reached
        TiledDataset(missing, **kwargs)
    text = str(info.value)
    assert text.startswith("TiledDataset: ") and "\n" not in text
    for word in words:
        assert word in text, text


def test_good_arguments_and_an_equal_overlap_pair(shapes):
    ds = TiledDataset(_inner(shapes), tile_size=[96.0, 128], overlap=[0.25, 0.25])
    assert ds.tile_size == (96, 128) and ds.overlap == 0.25 and len(ds) > 0


def test_tiles_in_order_decode_each_image_once(shapes):
    ds = TiledDataset(_inner(shapes), tile_size=64, overlap=0.2)
    reads = []
    source_getitem = type(ds.dataset).__getitem__

    class Counting(type(ds.dataset)):
        def __getitem__(self, i):
            reads.append(i)
            return source_getitem(self, i)

    ds.dataset.__class__ = Counting
    for k in range(len(ds)):
        ds[k]
    assert reads == [0, 1]  # one decode per source image
    ds[0]
    ds[len(ds) - 1]
    assert reads == [0, 1, 0, 1]  # out of order: decoded again (the cache holds one image)
