"""Analyse COCO-format predictions against a ground truth: per-class AP, PR curves, confusion matrix,
TIDE-style error breakdown, worst/best images (docs/analysis.md); or a classifier's predictions.csv against
class folders: per-class table, confusion matrix, most confused pairs, worst images (docs/classification.md);
or a semantic model's label maps (tools/infer.py's output folder) against a folder of label maps: per-class IoU,
pixel confusion matrix, per-image mIoU, worst images (docs/analysis.md, "Semantic segmentation").

    python tools/analyze.py GT_JSON PREDICTIONS_JSON --out-dir DIR [--img-dir DIR] [--iou-type bbox|segm]
                            [--score-thr T] [--iou-thr F] [--num-images N] [--no-tide]
    python tools/analyze.py IMG_DIR PREDICTIONS_CSV --out-dir DIR [--num-images N]
                            (IMG_DIR/<class>/<image>; or GT_CSV of file,label rows with --img-dir DIR)
    python tools/analyze.py GT_LABEL_DIR PRED_DIR --out-dir DIR [--classes FILE [--background NAME] | --config CONFIG]
                            [--mask-suffix .png] [--split-file FILE] [--ignore-index 255] [--num-images N]
                            (PRED_DIR: the --out-dir of tools/infer.py run with a semantic model)

AP values are in 0..1 everywhere (tables, CSV files, summary.json). Predictions whose category ids the
ground truth lacks, whose category names differ from its names for the same ids, or that cover under half
of its images give a WARNING line; predictions of images it does not hold are an error.
Exit status: 0 done, 2 bad input (files, folders, options).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from detkit.cli.errors import ArgumentParser, UserError, run_tool, user_errors
from detkit.cli.inputs import config_arg, input_arg, max_dets_arg, out_dir_arg, out_file_arg

TOOL = "analyze"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "gt_json",
        help="ground-truth COCO annotation file (classifiers: the folder of class folders; semantic models: the "
        "folder of label maps)",
    )
    ap.add_argument(
        "predictions",
        help="COCO results json (predictions.json of tools/infer.py; classifiers: predictions.csv; semantic models: "
        "tools/infer.py's --out-dir)",
    )
    ap.add_argument("--out-dir", required=True, help="folder for the CSV / PNG / JSON outputs")
    ap.add_argument("--img-dir", default=None, help="image folder: draw the worst and best images")
    ap.add_argument("--iou-type", choices=("bbox", "segm"), default="bbox")
    ap.add_argument("--score-thr", type=float, default=0.3, help="confusion matrix / per-image score threshold")
    ap.add_argument("--iou-thr", type=float, default=0.5, help="confusion matrix and error breakdown IoU threshold")
    ap.add_argument("--num-images", type=int, default=8, help="worst and best images to draw (each)")
    ap.add_argument(
        "--max-dets",
        type=int,
        default=100,
        metavar="N",
        help="detections per image that AP counts (pycocotools' maxDets, COCO's 100): raise it for images with "
        "more objects",
    )
    ap.add_argument("--no-tide", action="store_true", help="skip the error breakdown (re-runs COCOeval up to 9 times)")
    add_semantic_options(ap)
    args = ap.parse_args(argv)
    if not 0.0 < args.iou_thr <= 1.0:
        ap.error(f"--iou-thr must be in (0, 1], got {args.iou_thr}")
    if not 0.0 <= args.score_thr <= 1.0:
        ap.error(f"--score-thr must be in [0, 1], got {args.score_thr}")
    if args.num_images < 0:
        ap.error(f"--num-images must be >= 0, got {args.num_images}")
    return args


SEMANTIC_OPTIONS = ("classes", "background", "config", "mask_suffix", "split_file", "ignore_index")


def add_semantic_options(ap: argparse.ArgumentParser) -> None:
    """The options of the semantic mode (GT_LABEL_DIR PRED_DIR); None when not given."""
    sem = ap.add_argument_group("semantic models (GT_LABEL_DIR PRED_DIR)")
    sem.add_argument(
        "--classes", metavar="FILE", help="text file of class names, one per line (label value = line index)"
    )
    sem.add_argument("--background", metavar="NAME", help="insert NAME as class 0 before --classes' names")
    sem.add_argument(
        "--config",
        help="the model's config: data.val's classes, background, label_map, reduce_zero_label, mask_suffix, "
        "split_file (a SegFolderDataset), read as detkit eval reads them",
    )
    sem.add_argument(
        "--mask-suffix", metavar="SUFFIX", help="the label maps' name ending (default .png: a.jpg <-> a.png; _mask.png)"
    )
    sem.add_argument(
        "--split-file", metavar="FILE", help="text file of image stems: score only their label maps (Pascal VOC)"
    )
    sem.add_argument(
        "--ignore-index", type=int, metavar="N", help="ground-truth value that is not scored (default 255)"
    )


def is_semantic(args: argparse.Namespace) -> bool:
    """A semantic model's label maps: PRED_DIR is a folder (tools/infer.py's output), or is missing and names no
    file (no file ending) after a folder GT_LABEL_DIR."""
    pred = Path(args.predictions)
    return pred.is_dir() or (not pred.exists() and not pred.suffix and Path(args.gt_json).is_dir())


def run_semantic(args: argparse.Namespace) -> int:
    """Check the arguments, analyse infer's label maps against the ground-truth maps, print the report."""
    from detkit.analysis.semantic import OUTPUTS as SEM_OUTPUTS

    inputs = [
        input_arg(args.gt_json, "GT_LABEL_DIR", folder=True),
        input_arg(args.predictions, "PRED_DIR", folder=True),
    ]
    if args.img_dir is not None:
        raise UserError(
            "--img-dir is for COCO ground truth: the label maps' images are the paths PRED_DIR/images.json gives"
        )
    if args.classes is not None and args.config is not None:
        raise UserError("give --classes or --config, not both (--config takes data.val's classes)")
    if args.background is not None and args.classes is None:
        raise UserError(f"--background {args.background} inserts a class before --classes' names: give --classes too")
    written = Path(args.predictions) / "classes.txt"  # tools/infer.py's names of a semantic model's classes
    infer_classes = os.fspath(written) if args.classes is None and args.config is None and written.is_file() else None
    for flag, path in (("--classes", args.classes), ("--split-file", args.split_file), ("PRED_DIR", infer_classes)):
        if path is not None:
            inputs.append(input_arg(path, flag))
    cfg = config_arg(args.config) if args.config is not None else None
    out = check_out_dir(args.out_dir, inputs, SEM_OUTPUTS, ("worst",))
    from detkit.analysis.semantic import analyze_semantic, format_report
    from detkit.analysis.semantic_inputs import reading_from_options

    with user_errors(TOOL, extra=(ValueError, KeyError, TypeError)):  # the files' content: input errors
        options = {k: getattr(args, k) for k in SEMANTIC_OPTIONS if k != "config"}
        reading = reading_from_options(**options, config=cfg, config_name=args.config, infer_classes=infer_classes)
        result = analyze_semantic(args.gt_json, args.predictions, out, reading, args.num_images)
    print(format_report(result, out, args.num_images))
    return 0


def is_classification(args: argparse.Namespace) -> bool:
    """A classifier's predictions.csv (or a folder as the ground truth)."""
    return args.predictions.lower().endswith(".csv") or Path(args.gt_json).is_dir()


def run_classification(args: argparse.Namespace) -> int:
    """Check the arguments, analyse a classifier's predictions.csv, print the report."""
    from detkit.analysis.classification import OUTPUTS as CLS_OUTPUTS

    csv_gt = not Path(args.gt_json).is_dir()
    inputs = [input_arg(args.gt_json, "GT_CSV" if csv_gt else "IMG_DIR", folder=not csv_gt)]
    inputs.append(input_arg(args.predictions, "PREDICTIONS_CSV"))
    if csv_gt and args.img_dir is None:
        raise UserError(f"{args.gt_json} is a file: give the folder of class folders, or a CSV with --img-dir")
    if args.img_dir is not None:
        inputs.append(input_arg(args.img_dir, "--img-dir", folder=True))
    from detkit.analysis.classification import split_root_mistake

    folder = args.img_dir if csv_gt else args.gt_json
    mistake = split_root_mistake(folder, args.predictions, "--img-dir" if csv_gt else "IMG_DIR")
    if mistake is not None:
        raise UserError(mistake)
    check_out_dir(args.out_dir, inputs, CLS_OUTPUTS, ("worst",))
    from detkit.analysis.classification import analyze_classification, format_report

    img_dir, ann_file = (args.img_dir, args.gt_json) if csv_gt else (args.gt_json, None)
    with user_errors(TOOL, extra=(ValueError, KeyError, TypeError)):  # the files' content: input errors
        out = analyze_classification(img_dir, args.predictions, args.out_dir, ann_file, args.num_images)
    print(format_report(out, args.out_dir))
    return 0


def check_paths(args: argparse.Namespace) -> None:
    """Inputs exist; --out-dir is writable and none of its outputs is an input file; --max-dets >= 1."""
    max_dets_arg(args.max_dets)
    inputs = [input_arg(args.gt_json, "GT_JSON"), input_arg(args.predictions, "PREDICTIONS_JSON")]
    if args.img_dir is not None:
        inputs.append(input_arg(args.img_dir, "--img-dir", folder=True))
    from detkit.analysis.report import OUTPUTS

    outputs = [name for name in OUTPUTS if not (args.no_tide and name.startswith("errors."))]
    check_out_dir(args.out_dir, inputs, outputs, ("worst", "best"))


def check_out_dir(out_dir: str, inputs: list[Path], outputs: Sequence[str], drawing_folders: Sequence[str]) -> Path:
    """--out-dir is a writable folder outside every input folder, no input folder lies in its drawing folders
    (drawings would land among the inputs), none of its ``outputs`` is an input, and none replaces a file that
    no earlier run of analyze recorded (docs/analysis.md)."""
    from detkit.analysis.outputs import refuse_foreign_outputs
    from detkit.utils.output_names import is_inside

    folders = [Path(item) for item in inputs if Path(item).is_dir()]  # input files: out_file_arg's care below
    out = out_dir_arg(out_dir, "--out-dir", folders)
    for folder in folders:
        for sub in drawing_folders:
            if is_inside(folder, out / sub):
                raise UserError(
                    f"--out-dir {out_dir}: its drawing folder {out / sub} holds the input folder {folder}; the "
                    "drawings would land among the inputs: choose another --out-dir"
                )
    for name in outputs:
        out_file_arg(out / name, "--out-dir", inputs)
    problem = refuse_foreign_outputs(out_dir, outputs)
    if problem is not None:
        raise UserError(problem)
    return out


def check_img_dir(img_dir: str | None, coco_gt, gt_json: str) -> None:
    """Refuse an --img-dir that holds none of the ground truth's images (it drew nothing, with a warning per
    image): the folder that the json's file_name values are relative to is another one."""
    from detkit.data.image_io import UnsafePathError, safe_join

    if img_dir is None:
        return
    names = [im.get("file_name") for im in coco_gt.dataset.get("images", []) if isinstance(im, dict)]
    for name in names:
        try:
            if isinstance(name, str) and os.path.isfile(safe_join(img_dir, name)):
                return
        except UnsafePathError:
            continue
    if names:
        raise UserError(
            f"--img-dir {img_dir} holds none of the {len(names)} images of {gt_json} (e.g. {names[0]!r}): give the "
            "folder that their file_name values are relative to"
        )


def format_report(out: dict, args: argparse.Namespace) -> str:
    """The printed report: overall AP, per-class and per-size tables, confusion counts, error breakdown."""
    from detkit.analysis.errors import ERROR_TYPES, ORACLES
    from detkit.evaluation.coco_metrics import format_ap

    t, m = args.iou_type, out["metrics"]
    overall = "  ".join(f"{k} {format_ap(m[f'{t}/{k}'])}" for k in ("AP", "AP50", "AP75", "APs", "APm", "APl"))
    lines = [f"{t} (AP in 0..1, '-' = undefined): {overall}", out["table"]]
    cm = out["confusion"]
    lines.append(
        f"\nconfusion matrix (score >= {args.score_thr:g}, IoU >= {args.iou_thr:g}): {cm.num_gt} ground truths "
        f"+ {cm.num_unmatched_predictions} unmatched predictions = {int(cm.matrix.sum())} counts "
        f"({cm.num_ignored_predictions} predictions on crowd regions ignored)"
    )
    err = out["errors"]
    if err is not None:
        ap_name = f"AP{100 * err.iou_thr:.0f}"
        lines.append(
            f"\nerror breakdown at IoU {err.iou_thr:g} ({ap_name} {err.ap:.3f}): {ap_name} gained if fixed (0..1)"
        )
        lines += [f"  {k:<16s} {err.delta_ap[k]:+.3f}   (n={err.counts[k]})" for k in ERROR_TYPES + ORACLES]
    lines.append(f"\n{len(out['files'])} files written to {args.out_dir}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Check the arguments, analyse, print the report."""
    if is_semantic(args):
        return run_semantic(args)
    given = [f"--{k.replace('_', '-')}" for k in SEMANTIC_OPTIONS if getattr(args, k) is not None]
    if given:
        raise UserError(f"{given[0]} is for semantic label maps (GT_LABEL_DIR PRED_DIR, PRED_DIR a folder)")
    if is_classification(args):
        return run_classification(args)
    check_paths(args)
    from detkit.analysis.common import load_gt, load_results
    from detkit.analysis.report import analyze_loaded
    from detkit.evaluation.coco_metrics import crowded_note

    with user_errors(TOOL, extra=(ValueError, KeyError, TypeError)):  # the files' content: input errors
        coco_gt = load_gt(args.gt_json, args.iou_type)
        if not coco_gt.getImgIds() or not coco_gt.getCatIds():
            empty = "images" if not coco_gt.getImgIds() else "categories"
            raise UserError(f"GT_JSON {args.gt_json} has no {empty}: there is nothing to analyse against")
        res = load_results(args.predictions, coco_gt, args.iou_type, args.img_dir)
    check_img_dir(args.img_dir, coco_gt, args.gt_json)
    crowded = crowded_note(coco_gt.dataset, args.max_dets)
    if crowded:
        warnings.warn(f"{crowded}; raise it with --max-dets", UserWarning, stacklevel=1)
    if not res:
        warnings.warn(f"{args.predictions} holds no prediction to analyse: every AP is 0", UserWarning, stacklevel=1)
    elif max(float(r["score"]) for r in res) < args.score_thr:
        best = max(float(r["score"]) for r in res)
        warnings.warn(
            f"no prediction reaches --score-thr {args.score_thr:g} (the best score is {best:.3f}): the confusion "
            "matrix and the worst / best images see none of them; lower --score-thr",
            UserWarning,
            stacklevel=1,
        )
    from detkit.analysis.outputs import ForeignOutputError

    with user_errors(TOOL, extra=(ForeignOutputError,)):  # a drawing's name taken by a file of the user's
        out = analyze_loaded(
            coco_gt,
            res,
            args.out_dir,
            args.iou_type,
            args.score_thr,
            args.iou_thr,
            args.img_dir,
            args.num_images,
            tide=not args.no_tide,
            max_dets=args.max_dets,
        )
    print(format_report(out, args))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done, 2 a mistake of input (one line on stderr)."""
    return run_tool(TOOL, run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
