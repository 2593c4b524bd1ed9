"""TiledDataset: tiles cover each image, boxes and masks clipped to tiles, slivers dropped, built from a spec."""

import numpy as np
import pytest

from detkit.data.build import build_dataset
from detkit.data.collate import collate
from detkit.data.datasets.tiled import TiledDataset, crop_sample
from detkit.data.synthetic import make_shapes
from detkit.ops.tiling import tile_windows


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num_train=3, num_val=0, size=(160, 224), seed=3)


def _spec(paths, **kw):
    return {
        "type": "TiledDataset",
        "tile_size": [96, 128],
        "overlap": 0.25,
        "min_visible": 0.5,
        "dataset": {
            "type": "CocoDataset",
            "ann_file": str(paths["train_ann_file"]),
            "img_dir": str(paths["train_img_dir"]),
            "with_masks": True,
        },
        **kw,
    }


def test_tiles_clip_boxes_and_masks(shapes):
    ds = build_dataset(_spec(shapes))
    assert isinstance(ds, TiledDataset)
    wins = tile_windows(160, 224, (96, 128), 0.25)
    assert len(ds) == 3 * len(wins) and len(ds.aspect_ratios) == len(ds)
    assert ds.class_names == ["circle", "rectangle", "triangle", "star"] and ds.label_to_cat_id[0] == 1
    src = ds.dataset
    n_objects = 0
    for k in range(len(ds)):
        s = ds[k]
        i, (x0, y0, x1, y1) = ds.tiles[k]
        full = src[i]
        assert s["image"].shape == (y1 - y0, x1 - x0, 3)
        assert np.array_equal(s["image"], full["image"][y0:y1, x0:x1])
        assert s["masks"].shape == (len(s["boxes"]), y1 - y0, x1 - x0)
        assert (s["boxes"] >= 0).all() and (s["boxes"][:, 2] <= x1 - x0).all() and (s["boxes"][:, 3] <= y1 - y0).all()
        # exactly the objects with at least half their pixels in the tile are kept
        share = full["masks"][:, y0:y1, x0:x1].sum((1, 2)) / full["masks"].sum((1, 2))
        assert len(s["boxes"]) == int((share >= 0.5).sum())
        assert sorted(s["labels"].tolist()) == sorted(full["labels"][share >= 0.5].tolist())
        for box, mask in zip(s["boxes"], s["masks"]):
            ys, xs = np.nonzero(mask)
            assert xs.min() >= box[0] - 1 and xs.max() <= box[2] and ys.min() >= box[1] - 1 and ys.max() <= box[3]
        n_objects += len(s["boxes"])
    assert n_objects > 0
    batch = collate([ds[0], ds[1]])  # tiles batch like any sample
    assert batch["images"].shape[0] == 2


def test_slivers_dropped_and_empty_tiles_optional(shapes):
    sample = {
        "image": np.zeros((100, 100, 3), np.uint8),
        "boxes": np.array([[0, 0, 50, 20], [40, 0, 90, 20]], np.float32),
        "labels": np.array([0, 1]),
    }
    tile = crop_sample(sample, (45, 0, 100, 50), min_visible=0.5)
    assert tile["boxes"].tolist() == [[0, 0, 45, 20]] and tile["labels"].tolist() == [1]  # 5/50 of box 0: dropped
    assert tile["orig_size"] == (50, 55) and tile["tile"] == (45, 0, 100, 50)
    dense = build_dataset(
        _spec(shapes, keep_empty=False, pipeline=[{"type": "ResizeShortestEdge", "short_sizes": [48], "max_size": 64}])
    )
    assert 0 < len(dense) <= 3 * len(tile_windows(160, 224, (96, 128), 0.25))
    for k in range(len(dense)):
        s = dense[k]
        assert len(s["boxes"]) > 0 and min(s["image"].shape[:2]) == 48  # the tile pipeline ran
    with pytest.raises(ValueError, match="overlap"):
        TiledDataset(dense.dataset, tile_size=64, overlap=1.5)
