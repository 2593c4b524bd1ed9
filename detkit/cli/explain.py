"""Class-activation maps of a detector's detections, a classifier's top classes or a segmentor's classes.

    python tools/explain.py CONFIG CHECKPOINT INPUT... --out-dir DIR [--method M] [--target-layer NAME]
                            [--score-thr T] [--max-dets K] [--device D] [--gt ANN_FILE]
                            [--target-class NAME_OR_INDEX] [--box X1,Y1,X2,Y2]

CONFIG may be '-' to use the config stored in the checkpoint. INPUT: images, folders (recursive) and glob
patterns, as tools/infer.py takes them (videos are skipped). Per image under --out-dir: <stem>.png (the maps
blended with the image, the explained boxes and labels drawn) and <stem>.npy (float32 [K,H,W] in 0..1; <stem>
suffixed _2, _3... when an earlier input has it); explanations.json says which map is which. No output may
replace an input or the --gt file. Methods: eigencam (gradient-free), gradcam, gradcam++, hirescam
(one detection's score and box, one class, one segment). --gt ANN_FILE (COCO json of the inputs, matched by
file name) adds the pointing game: the share of ground-truth objects whose map peaks inside their box, for
the model and for a copy with randomised weights. --target-class (a class name, any case, or index) explains
that class of a classifier instead of its top classes, and only the detections (or segment) of that class of a
detector (segmentor); --box explains the one detection whose box has the highest IoU with it (image pixels) and
prints which it picked. The summary gives the score threshold used (the config's test threshold unless
--score-thr: 0.001 for the YOLO configs, 0.05 for the R-CNN ones). Needs the grad-cam package (pip install
'detkit[explain]'). See docs/explain.md. Exit status: 0 done, 2 bad input (config, checkpoint, device, inputs,
--out-dir, --gt, --target-layer, --target-class, --box, a --box that overlaps no detection of an image).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from detkit.cli.errors import ArgumentParser, UserError, run_tool, tool_label, user_errors
from detkit.cli.inputs import checkpoint_arg, device_arg, input_arg, out_dir_arg

TOOL = "explain"
METHODS = ("eigencam", "gradcam", "gradcam++", "hirescam")  # detkit.explain.METHODS, without importing torch
SEED = 0  # of the randomised model of the pointing game


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="config file, or '-' for the config stored in the checkpoint")
    ap.add_argument("checkpoint")
    ap.add_argument("inputs", nargs="+", help="image files, folders (recursive) or glob patterns")
    ap.add_argument("--out-dir", required=True, help="folder for the overlays, heatmaps and explanations.json")
    ap.add_argument("--method", default="eigencam", choices=METHODS, help="CAM method (default eigencam)")
    ap.add_argument("--target-layer", default=None, help="module name (default: the maps the head reads)")
    ap.add_argument(
        "--score-thr", type=float, default=None, help="detections explained (default: the config's test threshold)"
    )
    ap.add_argument("--max-dets", type=int, default=10, help="maps per image at most (default 10)")
    ap.add_argument("--device", default=None, help="cpu, cuda, cuda:N or N (default: cuda when available)")
    ap.add_argument("--gt", metavar="ANN_FILE", default=None, help="COCO json of the inputs: the pointing game")
    ap.add_argument(
        "--target-class", metavar="NAME_OR_INDEX", default=None, help="explain this class (default: the top ones)"
    )
    ap.add_argument(
        "--box", metavar="X1,Y1,X2,Y2", default=None, help="detectors: explain the detection of highest IoU with it"
    )
    args = ap.parse_args(argv)
    if args.box is not None:
        args.box = _box_arg(args.box, ap)
    if args.max_dets < 1:
        ap.error(f"--max-dets must be >= 1, got {args.max_dets}")
    if args.score_thr is not None and not 0.0 <= args.score_thr <= 1.0:
        ap.error(f"--score-thr must be in [0, 1], got {args.score_thr}")
    return args


def _box_arg(text: str, ap: argparse.ArgumentParser) -> tuple[float, ...]:
    """``--box x1,y1,x2,y2``: four numbers (image pixels), x2 > x1 and y2 > y1."""
    try:
        box = tuple(float(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        ap.error(f"--box must be four numbers x1,y1,x2,y2 (image pixels), got '{text}'")
    if not (box[2] > box[0] and box[3] > box[1]):
        ap.error(f"--box x1,y1,x2,y2 needs x2 > x1 and y2 > y1, got '{text}'")
    return box


def _check_with_model(args: argparse.Namespace, model, gt) -> int | None:
    """--box and --gt only for detectors, --gt's classes the model's; --target-class resolved to the model's class
    index (all before any image runs)."""
    from detkit.explain.adapters import adapter_for
    from detkit.explain.choice import class_index

    kind = adapter_for(model).kind
    if args.box is not None and kind != "detector":
        raise UserError(
            f"--box needs a detector; the checkpoint holds a {type(model).__name__} (choose a class with --target-class)"
        )
    if gt is not None:
        if kind != "detector":
            raise UserError(f"--gt: the pointing game needs a detector; the checkpoint holds a {type(model).__name__}")
        gt.check_classes(model.class_names)
    return None if args.target_class is None else class_index(args.target_class, model.class_names)


def _images(paths: list) -> list:
    """The image files among ``paths``; none at all is a mistake of input."""
    from detkit.inference.inputs import IMAGE_EXTS

    images = [p for p in paths if p.suffix.lower() in IMAGE_EXTS]
    if not images:
        raise UserError(f"no image among the {len(paths)} input(s) (videos are not explained), e.g. {paths[0]}")
    return images


def check_outputs(args: argparse.Namespace, paths: list, images: list) -> None:
    """No file the tool writes (``detkit.explain.files.output_files``) may be an input or the --gt file, or a file
    of the --out-dir that an earlier explain did not write (its explanations.json lists its own), and
    --out-dir may hold neither (``out_dir_arg``: outputs named after the inputs must not land on them)."""
    from detkit.explain.files import SUMMARY_FILE, output_files
    from detkit.utils.output_names import clobbering, manifest_names, refuse_foreign

    outputs = output_files(args.out_dir, images)
    problem = clobbering(args.out_dir, outputs, paths, args.gt) or refuse_foreign(
        args.out_dir, outputs, manifest_names(Path(args.out_dir) / SUMMARY_FILE, ("png", "npy"))
    )
    if problem is not None:
        raise UserError(problem)
    folders = [Path(p) for p in args.inputs if Path(p).is_dir()]  # an --out-dir inside one: read next time
    out_dir_arg(args.out_dir, "--out-dir", [*paths, *folders, *([args.gt] if args.gt is not None else [])])


def _ground_truth(ann_file: str, images: list):
    """The --gt json (``GroundTruth``); holding none of the input images is a mistake of input."""
    from detkit.explain.files import GroundTruth

    gt = GroundTruth(ann_file)
    if all(gt.get(p) is None for p in images):
        raise UserError(
            f"--gt {ann_file}: none of the {len(images)} input image(s) is in it (matched by file name, e.g. "
            f"{images[0].name})"
        )
    return gt


def run(args: argparse.Namespace) -> int:
    """Check every argument (the cheap file checks first, before torch loads), build the model, explain."""
    config = None if args.config == "-" else args.config
    checkpoint_arg(args.checkpoint, config)
    out_dir_arg(args.out_dir, "--out-dir")
    if args.gt is not None:
        input_arg(args.gt, "--gt ANN_FILE")
    from detkit.inference.inputs import collect_inputs

    paths = collect_inputs(args.inputs)
    images = _images(paths)
    check_outputs(args, paths, images)
    if len(images) < len(paths):
        print(
            f"{tool_label(TOOL)}: {len(paths) - len(images)} video(s) skipped: only images are explained",
            file=sys.stderr,
        )
    device = device_arg(args.device)

    gt = None if args.gt is None else _ground_truth(args.gt, images)

    import detkit
    from detkit.explain.files import explain_files, format_summary
    from detkit.explain.layers import ExplainError
    from detkit.explain.session import cam_method

    with user_errors(TOOL, extra=(ExplainError,)):
        cam_method(args.method)  # the grad-cam package is there
    with user_errors(TOOL, extra=(ValueError, KeyError, TypeError)):  # building from the config: input errors
        model = detkit.init_model(config, args.checkpoint, device=device)
    with user_errors(TOOL, extra=(ExplainError,)):
        label = _check_with_model(args, model, gt)
        summary = explain_files(
            model,
            images,
            args.out_dir,
            args.method,
            args.target_layer,
            args.score_thr,
            args.max_dets,
            gt,
            SEED,
            target_class=label,
            target_box=args.box,
        )
    print(format_summary(summary, SEED))
    if summary["skipped"] and not summary["images"]:
        path, reason = summary["skipped"][0]
        raise UserError(f"none of the {len(summary['skipped'])} input(s) could be read (e.g. {path}: {reason})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done, 2 a mistake of input (one line on stderr)."""
    return run_tool(TOOL, run, parse_args(argv))
