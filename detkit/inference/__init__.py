"""Inference helpers behind ``detkit.predict``: batching in-memory images, tiled inference for large images,
test-time augmentation and ensembles."""

from detkit.inference.ensemble import Ensemble
from detkit.inference.runner import build_test_pipeline, predict_arrays, to_rgb_array
from detkit.inference.tiling import (
    TileOptions,
    merge_detections,
    parse_tile,
    predict_tiled,
    stitch_sem_seg,
    tile_windows,
)
from detkit.inference.tta import TTAOptions, fuse_detections, parse_tta

__all__ = [
    "Ensemble",
    "TTAOptions",
    "TileOptions",
    "build_test_pipeline",
    "fuse_detections",
    "merge_detections",
    "parse_tile",
    "parse_tta",
    "predict_arrays",
    "predict_tiled",
    "stitch_sem_seg",
    "tile_windows",
    "to_rgb_array",
]
