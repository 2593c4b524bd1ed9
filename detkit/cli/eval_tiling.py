"""Recall of whole-image vs tiled inference on a large synthetic shapes image (docs/inference.md).

    python tools/eval_tiling.py CONFIG CHECKPOINT [--size 2000,3000] [--patch 250] [--tile 320,320]
                                [--tile-overlap 0.2] [--score-thr 0.3] [--iou 0.5] [--seed 0]
                                [--device D] [--batch-size B] [--out FILE.json] [--save-dir DIR]

CONFIG may be '-' for the config stored in the checkpoint. The image is a mosaic of shapes images
(patch x patch each), so its objects have the training data's sizes; a whole-image pass shrinks them
by the config's test resize. Prints a table and writes the figures as JSON with --out. Detections are matched
to the shapes classes by label index: a model of other class names (or order) is refused with both lists.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from detkit.cli.errors import ArgumentParser, UserError, run_tool, user_errors
from detkit.cli.inputs import checkpoint_arg, device_arg, hw_type, out_dir_arg, out_file_arg

TOOL = "eval_tiling"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("checkpoint")
    ap.add_argument("--size", type=hw_type, default=(2000, 3000), help="image H,W (default 2000,3000)")
    ap.add_argument("--patch", type=int, default=250, help="side of each shapes patch (training scale)")
    ap.add_argument("--tile", default="320,320", help="tile H,W")
    ap.add_argument("--tile-overlap", type=float, default=0.2)
    ap.add_argument("--score-thr", type=float, default=0.3, help="detections counted from this score")
    ap.add_argument("--iou", type=float, default=0.5, help="IoU for a detection to match a ground-truth box")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None, help="cpu, cuda, cuda:N or N (default: cuda when available)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--out", help="write the figures to this JSON file")
    ap.add_argument("--save-dir", help="write the image and the drawn predictions here")
    args = ap.parse_args(argv)
    if args.patch < 32 or args.batch_size < 1:
        ap.error("--patch must be >= 32 and --batch-size >= 1")
    if args.patch > min(args.size):
        ap.error(
            f"--patch {args.patch} is larger than the image (--size {args.size[0]},{args.size[1]}): give a "
            "smaller --patch or a larger --size"
        )
    if not 0.0 <= args.score_thr <= 1.0 or not 0.0 < args.iou <= 1.0:
        ap.error("--score-thr must be in [0, 1] and --iou in (0, 1]")
    return args


def run(args: argparse.Namespace) -> int:
    """Check the arguments, compare whole-image and tiled inference, print and write the figures."""
    config = None if args.config == "-" else args.config
    checkpoint_arg(args.checkpoint, config)
    inputs = [p for p in (config, args.checkpoint) if p]
    if args.out:
        out_file_arg(args.out, "--out", inputs)
    if args.save_dir:
        out_dir_arg(args.save_dir, "--save-dir")
    import detkit
    from detkit.benchmark.tiling_recall import compare_tiling, large_shapes_image
    from detkit.cli.tile_args import tile_from_args

    tile = tile_from_args(args)  # before the model loads: a wrong tile costs nothing
    device = device_arg(args.device)
    with user_errors(TOOL, extra=(ValueError, KeyError, TypeError)):  # building from the config: input errors
        model = detkit.init_model(config, args.checkpoint, device=device)
    if type(model).__name__ == "Classifier":
        raise UserError(
            f"eval-tiling measures box recall of a detector; checkpoint {args.checkpoint} holds a Classifier, which "
            "labels whole images: tiling is for detectors and segmentors (evaluate it with detkit eval)"
        )
    if type(model).__name__ == "Segmentor":
        raise UserError(
            f"eval-tiling measures box recall of a detector; checkpoint {args.checkpoint} holds a "
            f"{type(model).__name__} (its tiled inference: detkit infer --tile, or detkit.predict(..., tile=...))"
        )
    check_shapes_classes(model, args.checkpoint)
    image, boxes, labels = large_shapes_image(args.seed, args.size, args.patch)
    runs = compare_tiling(model, image, boxes, labels, tile, args.score_thr, args.iou, args.batch_size)
    print(format_runs(runs, image, boxes, tile, args))
    if args.out:
        write_json(args.out, runs, image, boxes, tile, args)
    if args.save_dir:
        save_drawings(Path(args.save_dir), model, image, tile, args)
    return 0


def check_shapes_classes(model, checkpoint: str) -> None:
    """The image holds the shapes data's classes and detections match them by label index: a model of other
    classes (names or order) is refused with both lists (its recall would count the wrong classes)."""
    from detkit.data.synthetic import CLASSES

    names = getattr(model, "class_names", None)
    if names is None or [str(n) for n in names] == list(CLASSES):
        return
    shown = ", ".join(str(n) for n in names[:8]) + (", ..." if len(names) > 8 else "")
    raise UserError(
        f"eval-tiling draws the shapes data's {len(CLASSES)} classes ({', '.join(CLASSES)}) and matches labels by "
        f"index, but checkpoint {checkpoint} predicts {len(names)} other classes ({shown}); give a model trained on "
        "the shapes data (detkit make-shapes), or score your own large images with detkit eval CONFIG CKPT --tile H,W"
    )


def format_runs(runs: dict, image, boxes, tile, args: argparse.Namespace) -> str:
    """The table: recall and precision (fractions in 0..1), matched and detected counts, seconds per pass."""
    lines = [
        f"image {image.shape[1]}x{image.shape[0]}, {len(boxes)} objects, tiles {tile.size[0]}x{tile.size[1]} "
        f"overlap {tile.overlap}, score >= {args.score_thr}, IoU >= {args.iou}; recall and precision in 0..1",
        f"{'pass':<22} {'recall':>7} {'precision':>9} {'matched':>8} {'dets':>6} {'seconds':>8}",
    ]
    lines += [
        f"{name:<22} {r['recall']:>7.3f} {r['precision']:>9.3f} {r['matched']:>8d} {r['num_det']:>6d} "
        f"{r['seconds']:>8.1f}"
        for name, r in runs.items()
    ]
    return "\n".join(lines)


def write_json(path: str, runs: dict, image, boxes, tile, args: argparse.Namespace) -> None:
    """The figures as JSON, written atomically."""
    from detkit.utils.files import atomic_write

    figures = {
        "image_size": list(image.shape[:2]),
        "num_objects": len(boxes),
        "tile": list(tile.size),
        "overlap": tile.overlap,
        "score_thr": args.score_thr,
        "iou": args.iou,
        "runs": runs,
    }
    text = json.dumps(figures, indent=2)
    atomic_write(path, lambda f: f.write(text.encode()))


def save_drawings(out: Path, model, image, tile, args: argparse.Namespace) -> None:
    """large.jpg (the image) and large_tiled.jpg (its tiled predictions drawn)."""
    import cv2

    import detkit
    from detkit.visualization import draw_prediction

    out.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out / "large.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    pred = detkit.predict(model, image, score_thr=args.score_thr, batch_size=args.batch_size, tile=tile)
    drawn = draw_prediction(image, pred, model.class_names, score_thr=args.score_thr)
    cv2.imwrite(str(out / "large_tiled.jpg"), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done, 2 a mistake of input (one line on stderr)."""
    return run_tool(TOOL, run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
