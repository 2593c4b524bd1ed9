"""Tiling geometry: overlapping windows that cover an image (tiled inference and TiledDataset)."""

from __future__ import annotations

from collections.abc import Sequence

Window = tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels


def _starts(length: int, tile: int, overlap: float) -> list[int]:
    """Tile origins along one axis: a step of ``tile * (1 - overlap)``, the last tile ending at the border."""
    if length <= tile:
        return [0]
    step = max(1, int(round(tile * (1.0 - overlap))))
    starts = list(range(0, length - tile, step))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def tile_windows(height: int, width: int, tile_hw: Sequence[int], overlap: float) -> list[Window]:
    """Windows ``(x0, y0, x1, y1)`` covering an image row by row; a tile is never larger than the image."""
    th, tw = min(int(tile_hw[0]), height), min(int(tile_hw[1]), width)
    return [(x, y, x + tw, y + th) for y in _starts(height, th, overlap) for x in _starts(width, tw, overlap)]
