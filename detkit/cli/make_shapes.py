#!/usr/bin/env python
"""Write the synthetic "shapes" dataset (COCO instances + semantic maps) used by the *_shapes configs.

python tools/make_shapes.py [OUT_DIR] [--num-train N] [--num-val M] [--seed S] [--size H,W]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from detkit.cli.errors import ArgumentParser, UserError, run_tool
from detkit.cli.inputs import out_dir_arg

TOOL = "make_shapes"
SHAPES_FILE = re.compile(r"\d{6}\.png")  # the image names make_shapes writes


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
    p = ArgumentParser(description=__doc__.split("\n")[0])  # prog: sys.argv[0] (`detkit make-shapes` sets it)
    p.add_argument("out_dir", nargs="?", default="data/shapes", help="output folder (default: data/shapes)")
    p.add_argument("--num-train", type=_count, default=128, help="training images (default 128)")
    p.add_argument("--num-val", type=_count, default=32, help="validation images (default 32)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same files")
    p.add_argument("--size", type=_size, default=(320, 320), help="image size H,W (default 320,320)")
    return p


def _is_shapes_json(path: Path) -> bool:
    try:
        info = json.loads(path.read_text(encoding="utf-8")).get("info") or {}
    except (OSError, ValueError, AttributeError):
        return False
    return str(info.get("description", "")).startswith("detkit synthetic shapes")


def check_out_dir(out_dir: str) -> Path:
    """OUT_DIR may be new, empty or an earlier shapes dataset; anything else would be overwritten: refused."""
    root = out_dir_arg(out_dir, "OUT_DIR")
    for name in ("train.json", "val.json"):
        if (root / name).exists() and not _is_shapes_json(root / name):
            raise UserError(
                f"OUT_DIR {root} holds {name}, which is not a shapes dataset; make_shapes would replace it and the "
                "images next to it: choose another OUT_DIR (e.g. data/shapes)"
            )
    from detkit.data.synthetic import CLASSES, SEM_CLASSES

    for name, classes in (("classes.txt", CLASSES), ("sem/classes.txt", SEM_CLASSES)):
        path = root / name
        if path.exists() and (not path.is_file() or path.read_bytes() != ("\n".join(classes) + "\n").encode()):
            raise UserError(
                f"OUT_DIR {root} holds {name}, which is not the shapes class list; make_shapes would replace it: "
                "choose another OUT_DIR (e.g. data/shapes)"
            )
    for sub in ("train", "val", "sem/train", "sem/val"):
        folder = root / sub
        other = [p.name for p in folder.iterdir() if not SHAPES_FILE.fullmatch(p.name)] if folder.is_dir() else []
        if other:
            raise UserError(
                f"OUT_DIR {root}: {folder} holds files make_shapes did not write (e.g. {other[0]}); it would "
                "overwrite its images there: choose another OUT_DIR (e.g. data/shapes)"
            )
    return root


def run(args: argparse.Namespace) -> int:
    """Check OUT_DIR, write the dataset, print its statistics."""
    from detkit.data.synthetic import dataset_stats, make_shapes

    check_out_dir(args.out_dir)
    t0 = time.perf_counter()
    progress = sys.stderr.isatty()  # no progress frames in a log file or a pipe
    paths = make_shapes(args.out_dir, args.num_train, args.num_val, args.seed, args.size, progress=progress)
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


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 written, 2 a mistake of input (one line on stderr)."""
    return run_tool(TOOL, run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
