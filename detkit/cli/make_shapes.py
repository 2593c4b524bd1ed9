#!/usr/bin/env python
"""Write the synthetic "shapes" dataset (COCO instances + semantic maps) used by the *_shapes configs.

python tools/make_shapes.py [OUT_DIR] [--num-train N] [--num-val M] [--seed S] [--size H,W]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detkit.data.synthetic import dataset_stats, make_shapes


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line (exit 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _size(text: str) -> tuple[int, int]:
    try:
        parts = [int(v) for v in text.replace("x", ",").split(",")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 32:
        raise argparse.ArgumentTypeError(f"--size must be H,W (or one number) of at least 32 px, got {text!r}")
    return parts[0], parts[1]


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="make_shapes.py", description=__doc__.split("\n")[0])
    p.add_argument("out_dir", nargs="?", default="data/shapes", help="output folder (default: data/shapes)")
    p.add_argument("--num-train", type=_count, default=128, help="training images (default 128)")
    p.add_argument("--num-val", type=_count, default=32, help="validation images (default 32)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same files")
    p.add_argument("--size", type=_size, default=(320, 320), help="image size H,W (default 320,320)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    try:
        paths = make_shapes(args.out_dir, args.num_train, args.num_val, args.seed, args.size, progress=True)
    except (ValueError, OSError) as e:
        print(f"make_shapes.py: error: {e}", file=sys.stderr)
        return 2
    print(
        f"wrote {paths['root']} in {time.perf_counter() - t0:.1f}s (seed {args.seed}, "
        f"size {args.size[0]}x{args.size[1]})"
    )
    for split in ("train", "val"):
        s = dataset_stats(paths[f"{split}_ann_file"])
        per_class = ", ".join(f"{k} {v}" for k, v in s["per_class"].items())
        sizes = ", ".join(f"{k} {v}" for k, v in s["sizes"].items())
        print(
            f"  {split}: {s['images']} images ({s['empty_images']} empty), {s['objects']} objects "
            f"[{per_class}] [{sizes}] -> {paths[f'{split}_ann_file']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
