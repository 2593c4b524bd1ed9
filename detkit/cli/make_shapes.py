#!/usr/bin/env python
"""Write the synthetic "shapes" dataset (COCO instances + semantic maps) used by the *_shapes configs.

python tools/make_shapes.py [OUT_DIR] [--num-train N] [--num-val M] [--seed S] [--size H,W]
python tools/make_shapes.py [OUT_DIR] --task classify [--num-train N] [--num-val M] [--seed S] [--size S]
                            [--variant shape|shape_colour] [--grey]
python tools/make_shapes.py [OUT_DIR] --task track [--num-frames N] [--num-moving K] [--seed S] [--size H,W]

--task classify writes the classification version (configs/cls/*_shapes.yaml): one shape per image, one
folder per class, OUT_DIR/train/<class>/NNNNNN.png, OUT_DIR/val/<class>/..., OUT_DIR/classes.txt; --num-train
and --num-val count images per class there (default 500 and 100), --size is the side (default 32).

--task track writes a tracking sequence (default OUT_DIR data/shapes_track, 80 frames, 6 moving shapes and a
static one in front of them) in the MOT Challenge layout: OUT_DIR/img1/NNNNNN.png, OUT_DIR/video.mp4,
OUT_DIR/gt/gt.txt, OUT_DIR/seqinfo.ini (detkit.data.synthetic_track; docs/tracking.md).
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
CLS_MIN_SIZE = 8  # classification images may be as small as 8 px; detection scenes 32 px
DEFAULTS = {  # per task: OUT_DIR, --num-train, --num-val (classify: per class), --size
    "detect": ("data/shapes", 128, 32, (320, 320)),
    "classify": ("data/shapes_cls", 500, 100, (32, 32)),
    "track": ("data/shapes_track", None, None, (320, 320)),
}
TRACK_FILES = {"img1", "gt", "video.mp4", "seqinfo.ini", "classes.txt"}  # what --task track writes


def _size(text: str) -> tuple[int, int]:
    try:
        parts = [int(v) for v in text.replace("x", ",").split(",")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < CLS_MIN_SIZE:
        raise argparse.ArgumentTypeError(
            f"--size must be H,W (or one number) of at least {CLS_MIN_SIZE} px (32 to detect), got {text!r}"
        )
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
    p.add_argument("out_dir", nargs="?", help="output folder (default: data/shapes; data/shapes_cls to classify)")
    p.add_argument(
        "--task",
        choices=sorted(DEFAULTS),
        default="detect",
        help="detect: COCO instances + semantic maps (default); classify: class folders of one-shape images; "
        "track: a video of moving shapes with MOT ground truth",
    )
    p.add_argument("--num-train", type=_count, help="training images (default 128; classify: 500 per class)")
    p.add_argument("--num-val", type=_count, help="validation images (default 32; classify: 100 per class)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same files")
    p.add_argument("--size", type=_size, help="image size H,W (default 320,320; classify: one side, default 32)")
    p.add_argument(
        "--variant",
        choices=("shape", "shape_colour"),
        help="classify: 4 shape classes (default) or 12 colour_shape classes (red, green, blue)",
    )
    p.add_argument("--grey", action="store_true", help="classify: single-channel images (variant shape)")
    p.add_argument("--num-frames", type=_count, help="track: frames of the sequence (default 80)")
    p.add_argument("--num-moving", type=_count, help="track: moving shapes (default 6; pairs cross)")
    return p


def resolve_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Fill the task's defaults; options of the other task and sizes it cannot write are usage errors."""
    out_dir, num_train, num_val, size = DEFAULTS[args.task]
    args.out_dir = args.out_dir or out_dir
    args.num_train = num_train if args.num_train is None else args.num_train
    args.num_val = num_val if args.num_val is None else args.num_val
    args.size = size if args.size is None else args.size
    if args.task != "track" and (args.num_frames is not None or args.num_moving is not None):
        parser.error("--num-frames and --num-moving are options of --task track")
    if args.task == "track":
        return resolve_track_args(parser, args)
    if args.task == "detect":
        if args.variant is not None or args.grey:
            parser.error("--variant and --grey are options of --task classify")
        if min(args.size) < 32:
            parser.error(f"--size must be H,W (or one number) of at least 32 px, got {args.size[0]},{args.size[1]}")
        return args
    args.variant = args.variant or "shape"
    if args.size[0] != args.size[1]:
        parser.error(f"--task classify writes square images: give one --size, got {args.size[0]},{args.size[1]}")
    if args.grey and args.variant != "shape":
        parser.error("--grey removes the colour that --variant shape_colour classifies: use --variant shape")
    return args


def resolve_track_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """--task track: frames and moving shapes (defaults 80 and 6); the options of the other tasks are refused."""
    if args.num_train is not None or args.num_val is not None or args.variant is not None or args.grey:
        parser.error("--num-train, --num-val, --variant and --grey are not options of --task track")
    args.num_frames = 80 if args.num_frames is None else args.num_frames
    args.num_moving = 6 if args.num_moving is None else args.num_moving
    if args.num_frames < 2 or args.num_moving < 1:
        parser.error(
            f"--task track needs --num-frames >= 2 and --num-moving >= 1, got {args.num_frames}, {args.num_moving}"
        )
    if min(args.size) < 128:
        parser.error(f"--task track needs --size of at least 128 px, got {args.size[0]},{args.size[1]}")
    return args


def check_track_out_dir(out_dir: str) -> Path:
    """OUT_DIR of --task track may be new, empty or an earlier tracking sequence; other files are refused."""
    root = out_dir_arg(out_dir, "OUT_DIR")
    other = sorted(p.name for p in root.iterdir() if p.name not in TRACK_FILES) if root.is_dir() else []
    frames = root / "img1"
    stray = [p.name for p in frames.iterdir() if not SHAPES_FILE.fullmatch(p.name)] if frames.is_dir() else []
    gt = [p.name for p in (root / "gt").iterdir() if p.name != "gt.txt"] if (root / "gt").is_dir() else []
    if other or stray or gt:
        name = (other or [f"img1/{n}" for n in stray] or [f"gt/{n}" for n in gt])[0]
        raise UserError(
            f"OUT_DIR {root} holds {name}, which make_shapes --task track does not write; it would mix with or "
            f"overwrite files there: choose another OUT_DIR (e.g. {_elsewhere(root, 'data/shapes_track')})"
        )
    return root


def run_track(args: argparse.Namespace) -> int:
    """Check OUT_DIR, write the tracking sequence, print what it holds."""
    from detkit.data.synthetic_track import make_shapes_track

    check_track_out_dir(args.out_dir)
    t0 = time.perf_counter()
    paths = make_shapes_track(args.out_dir, args.num_frames, args.num_moving, seed=args.seed, size=args.size)
    lines = paths["gt"].read_text(encoding="utf-8").split()
    ids = {line.split(",")[1] for line in lines}
    counted = sum(line.split(",")[6] == "1" for line in lines)
    print(
        f"wrote {paths['root']} in {time.perf_counter() - t0:.1f}s (seed {args.seed}, {args.num_frames} frames of "
        f"{args.size[0]}x{args.size[1]}, {args.num_moving} moving shapes and 1 in front of them)"
    )
    print(f"  frames -> {paths['frames']}, video -> {paths['video']}")
    print(
        f"  ground truth: {len(ids)} tracks, {counted} boxes counted ({len(lines) - counted} flagged 0) -> {paths['gt']}"
    )
    return 0


def _elsewhere(root: Path, default: str) -> Path:
    """A suggested OUT_DIR other than ``root``: ``default``, or ``<root>_2`` when that is ``root`` itself."""
    if Path(default).absolute() != root.absolute():
        return Path(default)
    return root.with_name(f"{root.name}_2")


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
                f"images next to it: choose another OUT_DIR (e.g. {_elsewhere(root, 'data/shapes')})"
            )
    from detkit.data.synthetic import CLASSES, SEM_CLASSES

    for name, classes in (("classes.txt", CLASSES), ("sem/classes.txt", SEM_CLASSES)):
        path = root / name
        if path.exists() and (not path.is_file() or path.read_bytes() != ("\n".join(classes) + "\n").encode()):
            raise UserError(
                f"OUT_DIR {root} holds {name}, which is not the shapes class list; make_shapes would replace it: "
                f"choose another OUT_DIR (e.g. {_elsewhere(root, 'data/shapes')})"
            )
    for sub in ("train", "val", "sem/train", "sem/val"):
        folder = root / sub
        other = [p for p in folder.iterdir() if not SHAPES_FILE.fullmatch(p.name)] if folder.is_dir() else []
        if other:
            what = f"folders (e.g. {other[0].name}/: class folders of --task classify?)" if other[0].is_dir() else ""
            raise UserError(
                f"OUT_DIR {root}: {folder} holds {what or f'files make_shapes did not write (e.g. {other[0].name})'}; "
                f"it would overwrite its images there: choose another OUT_DIR (e.g. {_elsewhere(root, 'data/shapes')})"
            )
    return root


def check_cls_out_dir(out_dir: str, variant: str) -> Path:
    """OUT_DIR of --task classify may be new, empty or an earlier classification shapes dataset of the same
    variant; anything else (other files, other class folders, the detection data) is refused."""
    from detkit.data.synthetic_cls import VARIANTS, cls_class_names

    root = out_dir_arg(out_dir, "OUT_DIR")
    names = cls_class_names(variant)
    if (root / "train.json").exists():
        raise UserError(
            f"OUT_DIR {root} holds train.json (detection data); --task classify writes class folders next to it: "
            f"choose another OUT_DIR (e.g. {_elsewhere(root, 'data/shapes_cls')})"
        )
    listed = root / "classes.txt"
    if listed.exists():
        text = listed.read_bytes() if listed.is_file() else b""
        other = next((v for v in VARIANTS if text == ("\n".join(cls_class_names(v)) + "\n").encode()), None)
        if other != variant:
            what = f"the --variant {other} data" if other else "a classes.txt that make_shapes did not write"
            raise UserError(
                f"OUT_DIR {root} holds {what}; writing --variant {variant} there would mix class folders: choose "
                "another OUT_DIR" + (f" or --variant {other}" if other else "")
            )
    for split in ("train", "val"):
        folder = root / split
        for item in sorted(folder.iterdir()) if folder.is_dir() else []:
            files = [p.name for p in item.iterdir()] if item.is_dir() and item.name in names else None
            stray = item.name if files is None else next((f for f in files if not SHAPES_FILE.fullmatch(f)), None)
            if stray is not None:
                where = item if files is None else item / stray
                raise UserError(
                    f"OUT_DIR {root}: {where} is not an image or class folder that make_shapes --task classify "
                    f"--variant {variant} writes; it would mix with the data: choose another OUT_DIR"
                )
    return root


def run_classify(args: argparse.Namespace) -> int:
    """Check OUT_DIR, write the classification data, print its statistics."""
    from detkit.data.synthetic_cls import make_shapes_cls

    check_cls_out_dir(args.out_dir, args.variant)
    t0 = time.perf_counter()
    paths = make_shapes_cls(
        args.out_dir, args.num_train, args.num_val, args.seed, args.size[0], args.variant, args.grey
    )
    names = paths["classes_file"].read_text(encoding="utf-8").split()
    print(
        f"wrote {paths['root']} in {time.perf_counter() - t0:.1f}s (seed {args.seed}, variant {args.variant}, "
        f"{args.size[0]}x{args.size[0]} {'grey' if args.grey else 'RGB'} PNG, {len(names)} classes: "
        f"{', '.join(names)})"
    )
    for split, num in (("train", args.num_train), ("val", args.num_val)):
        print(f"  {split}: {num * len(names)} images, {num} per class -> {paths[f'{split}_img_dir']}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Check OUT_DIR, write the dataset, print its statistics."""
    if args.task == "classify":
        return run_classify(args)
    if args.task == "track":
        return run_track(args)
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
    parser = build_parser()
    return run_tool(TOOL, run, resolve_args(parser, parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
