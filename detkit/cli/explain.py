"""Class-activation maps of a detector's detections, a classifier's top classes or a segmentor's classes.

    python tools/explain.py CONFIG CHECKPOINT INPUT... --out-dir DIR [--method M] [--target-layer NAME]
                            [--score-thr T] [--max-dets K] [--device D] [--gt ANN_FILE]

CONFIG may be '-' to use the config stored in the checkpoint. INPUT: images, folders (recursive) and glob
patterns, as tools/infer.py takes them (videos are skipped). Per image under --out-dir: <stem>.png (the maps
blended with the image, the explained boxes and labels drawn) and <stem>.npy (float32 [K,H,W] in 0..1; <stem>
suffixed _2, _3... when an earlier input has it); explanations.json says which map is which. No output may
replace an input or the --gt file. Methods: eigencam (gradient-free), gradcam, gradcam++, hirescam
(one detection's score and box, one class, one segment). --gt ANN_FILE (COCO json of the inputs, matched by
file name) adds the pointing game: the share of ground-truth objects whose map peaks inside their box, for
the model and for a copy with randomised weights. Needs the grad-cam package (pip install 'detkit[explain]').
See docs/explain.md. Exit status: 0 done, 2 bad input (config, checkpoint, device, inputs, --out-dir, --gt,
--target-layer).
"""

from __future__ import annotations

import argparse
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
    ap.add_argument("--score-thr", type=float, default=None, help="detections explained (default: the config's)")
    ap.add_argument("--max-dets", type=int, default=10, help="maps per image at most (default 10)")
    ap.add_argument("--device", default=None, help="cpu, cuda, cuda:N or N (default: cuda when available)")
    ap.add_argument("--gt", metavar="ANN_FILE", default=None, help="COCO json of the inputs: the pointing game")
    args = ap.parse_args(argv)
    if args.max_dets < 1:
        ap.error(f"--max-dets must be >= 1, got {args.max_dets}")
    if args.score_thr is not None and not 0.0 <= args.score_thr <= 1.0:
        ap.error(f"--score-thr must be in [0, 1], got {args.score_thr}")
    return args


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

    gt = None
    if args.gt is not None:
        from detkit.explain.files import GroundTruth

        gt = GroundTruth(args.gt)
        if all(gt.get(p) is None for p in images):
            raise UserError(
                f"--gt {args.gt}: none of the {len(images)} input image(s) is in it (matched by file name, e.g. "
                f"{images[0].name})"
            )

    import detkit
    from detkit.explain.adapters import adapter_for
    from detkit.explain.files import explain_files, format_summary
    from detkit.explain.layers import ExplainError
    from detkit.explain.session import cam_method

    with user_errors(TOOL, extra=(ExplainError,)):
        cam_method(args.method)  # the grad-cam package is there
    with user_errors(TOOL, extra=(ValueError, KeyError, TypeError)):  # building from the config: input errors
        model = detkit.init_model(config, args.checkpoint, device=device)
    with user_errors(TOOL, extra=(ExplainError,)):
        kind = adapter_for(model).kind
        if gt is not None:
            if kind != "detector":
                raise UserError(
                    f"--gt: the pointing game needs a detector; the checkpoint holds a {type(model).__name__}"
                )
            gt.check_classes(model.class_names)
        summary = explain_files(
            model, images, args.out_dir, args.method, args.target_layer, args.score_thr, args.max_dets, gt, SEED
        )
    print(format_summary(summary, SEED))
    if summary["skipped"] and not summary["images"]:
        path, reason = summary["skipped"][0]
        raise UserError(f"none of the {len(summary['skipped'])} input(s) could be read (e.g. {path}: {reason})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done, 2 a mistake of input (one line on stderr)."""
    return run_tool(TOOL, run, parse_args(argv))
