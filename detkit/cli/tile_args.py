"""The tile options of infer and eval (``--tile H,W``, ``--tile-overlap F``, ``--tile-whole-image``): the
arguments, their checks and the ``TileOptions`` they give (``detkit.inference.tile_options``)."""

from __future__ import annotations

import argparse

from detkit.cli.errors import UserError


def add_tile_arguments(
    ap: argparse.ArgumentParser, whole_image: bool = True, what: str = "inference (large images)"
) -> None:
    """``--tile H,W``, ``--tile-overlap F`` (and ``--tile-whole-image``): tiled ``what`` (also ``detkit eval``'s)."""
    ap.add_argument("--tile", metavar="H,W", default=None, help=f"H x W tiles: tiled {what}")
    ap.add_argument(
        "--tile-overlap",
        type=float,
        default=None,
        metavar="F",
        help="tile overlap, a fraction of the tile size in [0, 1) (default 0.2; 64 px of a 320 tile is 0.2)",
    )
    if whole_image:
        ap.add_argument("--tile-whole-image", action="store_true", help="add a whole-image pass to the tiles")


def check_tile_flags(ap: argparse.ArgumentParser, args: argparse.Namespace, what: str = "inference") -> None:
    """The tile options need ``--tile``: one line naming the flag otherwise."""
    for flag, given in (
        ("--tile-overlap", args.tile_overlap is not None),
        ("--tile-whole-image", getattr(args, "tile_whole_image", False)),
    ):
        if given and not args.tile:
            ap.error(f"{flag} is an option of tiled {what}: add --tile H,W (or drop {flag})")


def tile_from_args(args: argparse.Namespace):
    """``TileOptions`` of ``--tile`` / ``--tile-overlap`` / ``--tile-whole-image`` (None without --tile); a
    UserError naming the flag (a size under 32 px or not whole, an overlap in pixels: the fraction it means)."""
    from detkit.inference.tile_options import TileOptions, check_overlap, check_tile_size, parse_tile_text

    if not args.tile:
        return None
    try:
        size = check_tile_size(parse_tile_text(args.tile, "--tile"), "--tile")
        overlap = check_overlap(0.2 if args.tile_overlap is None else args.tile_overlap, "--tile-overlap", size)
    except ValueError as e:
        raise UserError(str(e)) from None
    return TileOptions(size=size, overlap=overlap, whole_image=bool(getattr(args, "tile_whole_image", False)))


def check_tile_alone(args: argparse.Namespace, views) -> None:
    """``--tile`` with test-time augmentation or an ensemble (``views``: ``tta_options(args)``): one line."""
    if views is not None and args.tile:
        raise UserError(f"--tile {args.tile} does not combine with --tta / --ensemble; run one or the other")
