"""Tile arguments: ``TileOptions``, ``parse_tile`` and the checks of a tile size and overlap that
``detkit.predict(tile=...)``, ``detkit infer / eval --tile`` and ``TiledDataset`` share.

A tile side is a whole number of pixels >= ``MIN_TILE``; an overlap is a fraction of the tile size in [0, 1)
(an overlap given in pixels, e.g. 64, is answered with the fraction it means: 64 px of a 320 tile is 0.2).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, fields
from typing import Any

from detkit.config_rules import RENAMED_KEYS

__all__ = ["MIN_TILE", "TileOptions", "check_overlap", "check_tile_size", "parse_tile", "parse_tile_text"]

MIN_TILE = 32  # px: the smallest tile side (a network input; a 1x1 tile made 540,000 windows of a 900x600 image)


def _side(value: Any, key: str, given: Any) -> int:
    """One tile side: a whole number >= MIN_TILE (an integral float such as 320.0 is taken)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{key} must be whole numbers of pixels >= {MIN_TILE}, got {given!r}")
    if float(value) != int(value):
        raise ValueError(f"{key} must be whole numbers of pixels (>= {MIN_TILE}), got {given!r}: {value} is not one")
    if int(value) < MIN_TILE:
        raise ValueError(
            f"{key} must be at least {MIN_TILE} px per side (a tile is a network input; tiny tiles make millions of "
            f"windows), got {given!r}"
        )
    return int(value)


def check_tile_size(value: Any, key: str = "tile size") -> tuple[int, int]:
    """``(h, w)`` from an int (square) or a pair of whole numbers >= ``MIN_TILE``; a ValueError naming ``key``."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        side = _side(value, key, value)
        return side, side
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return _side(value[0], key, value), _side(value[1], key, value)
    count = f" ({len(value)} numbers)" if isinstance(value, (list, tuple)) else ""
    raise ValueError(
        f"{key} must be one number or (h, w), two whole numbers of pixels >= {MIN_TILE}, got {value!r}{count}"
    )


MAX_OVERLAP = 0.9  # a step of a tenth of the tile: each pixel in 100 tiles


def check_overlap(value: Any, key: str = "tile overlap", size: Any = None) -> float:
    """An overlap fraction in [0, MAX_OVERLAP]; a pair ``(h, w)`` of equal fractions is taken as one (tiling uses one
    fraction for both axes). A value >= 1 (pixels?) is answered with the fraction it means of ``size``."""
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and value[0] == value[1]:
            return check_overlap(value[0], key, size)
        raise ValueError(
            f"{key} must be one fraction in [0, 1) for both axes (tiling overlaps height and width alike), got "
            f"{value!r}; give one number, e.g. 0.2"
        )
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{key} must be a fraction of the tile size in [0, 1), got {value!r}")
    if not 0.0 <= float(value) < 1.0:  # NaN fails too
        hint = ""
        if float(value) >= 1.0 and size is not None:
            side = max(size) if isinstance(size, (list, tuple)) else size
            if isinstance(side, numbers.Real) and side > 0:
                hint = f" (it is a fraction, not pixels: {value:g} px of a {side:g} tile is {value / side:.2g})"
        raise ValueError(f"{key} must be a fraction of the tile size in [0, 1), got {value:g}{hint}")
    if float(value) > MAX_OVERLAP:  # 0.99 of a 64 px tile steps 0.64 px: ~10^5 tiles an image, a run that never ends
        raise ValueError(
            f"{key} {value:g} is above {MAX_OVERLAP:g}: each pixel would be in over {round(1 / (1 - MAX_OVERLAP)) ** 2} "
            f"tiles ({1 / (1 - float(value)) ** 2:.0f} here); tiles usually overlap 0.1-0.3 (SAHI: 0.2)"
        )
    return float(value)


@dataclass
class TileOptions:
    """How to tile an image.

    Args:
        size: tile ``(h, w)`` in image pixels (the training scale is a good choice).
        overlap: overlap of neighbouring tiles, a fraction of the tile size in [0, 1).
        whole_image: also run the whole image once (large objects that no tile holds whole).
        nms_thr: IoU above which a lower-scoring same-class detection is a duplicate.
        merge_edges: merge detections cut by interior tile edges with the detection that covers them.
        ios_thr: intersection over the smaller box at which a cut detection is merged.
        edge_margin: pixels from an interior tile edge within which a box counts as cut.
        max_per_img: keep at most this many detections per image after merging (None: all).
        batch_size: tiles per forward pass (None: ``predict``'s ``batch_size``).
    """

    size: tuple[int, int]
    overlap: float = 0.2
    whole_image: bool = False
    nms_thr: float = 0.5
    merge_edges: bool = True
    ios_thr: float = 0.5
    edge_margin: float = 2.0
    max_per_img: int | None = None
    batch_size: int | None = None

    def __post_init__(self):
        self.size = check_tile_size(self.size)
        self.overlap = check_overlap(self.overlap, size=self.size)


def parse_tile_text(tile: str, key: str = "tile") -> Any:
    """``"H,W"`` / ``"HxW"`` / ``"S"`` as numbers (checked by ``check_tile_size``)."""
    words = [w.strip() for w in tile.lower().replace("x", ",").split(",")]
    try:
        numbers_ = [float(w) if "." in w else int(w) for w in words]
    except ValueError:
        raise ValueError(f"{key} must be H,W (e.g. 640,640), got {tile!r}") from None
    if len(numbers_) > 2:
        raise ValueError(f"{key} must be H,W (two numbers, e.g. 640,640) or one number, got {tile!r}")
    return numbers_[0] if len(numbers_) == 1 else tuple(numbers_)


def parse_tile(tile: Any, **defaults: Any) -> TileOptions | None:
    """``TileOptions`` from an int, ``(h, w)``, ``"H,W"``, a dict (``size`` + option keys) or TileOptions.

    ``defaults`` fill options the value does not give (e.g. ``overlap`` from a command line).
    """
    if tile is None or isinstance(tile, TileOptions):
        return tile
    if isinstance(tile, str):
        tile = parse_tile_text(tile)
    if isinstance(tile, dict):
        known = {f.name for f in fields(TileOptions)}
        unknown = sorted(set(tile) - known)
        old = [k for k in unknown if RENAMED_KEYS.get(k) in known]
        if old:
            raise ValueError(f"tile option {old[0]!r} is an old spelling: write {RENAMED_KEYS[old[0]]!r}")
        if unknown:
            raise ValueError(f"unknown tile option(s) {unknown}; known: {sorted(known)}")
        if "size" not in tile:
            raise ValueError("a tile dict needs 'size': (h, w)")
        return TileOptions(**{**defaults, **tile})
    return TileOptions(size=tile, **defaults)
