"""Inference helpers behind ``detkit.predict``: batching in-memory images and tiled inference for large images."""

from detkit.inference.runner import build_test_pipeline, predict_arrays, to_rgb_array
from detkit.inference.tiling import (
    TileOptions,
    merge_detections,
    parse_tile,
    predict_tiled,
    stitch_sem_seg,
    tile_windows,
)

__all__ = [
    "TileOptions",
    "build_test_pipeline",
    "merge_detections",
    "parse_tile",
    "predict_arrays",
    "predict_tiled",
    "stitch_sem_seg",
    "tile_windows",
    "to_rgb_array",
]
