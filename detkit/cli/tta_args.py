"""The test-time augmentation and ensemble flags shared by tools/eval.py and tools/infer.py."""

from __future__ import annotations

import argparse
import importlib.util

from detkit.cli.errors import UserError

__all__ = ["add_tta_arguments", "check_merge", "tta_options"]


def add_tta_arguments(parser: argparse.ArgumentParser) -> None:
    """``--tta``, ``--tta-scales``, ``--tta-no-flip``, ``--tta-merge``, ``--tta-iou`` and ``--ensemble``."""
    group = parser.add_argument_group("test-time augmentation and ensembles (docs/inference.md)")
    group.add_argument("--tta", action="store_true", help="test-time augmentation: scales and mirrored views merged")
    group.add_argument("--tta-scales", metavar="S,S,...", help="resize factors of the views (default 0.83,1,1.2)")
    group.add_argument("--tta-no-flip", action="store_true", help="no mirrored views (scales only)")
    group.add_argument(
        "--tta-merge",
        choices=("nms", "wbf"),
        help="merge of detections: class-aware NMS (default) or weighted box fusion",
    )
    group.add_argument(
        "--tta-iou", type=float, metavar="T", help="IoU of one object in the merge (default 0.55 for NMS, 0.7 for WBF)"
    )
    group.add_argument(
        "--ensemble",
        nargs="+",
        default=[],
        metavar="CKPT",
        help="more checkpoints (same classes) merged with CHECKPOINT, each with the config it stores",
    )


def tta_options(args: argparse.Namespace):
    """``TTAOptions`` from the flags, or None when neither ``--tta`` nor ``--ensemble`` is given.

    Raises:
        UserError: a view flag without ``--tta``, a merge flag without ``--tta`` or ``--ensemble``, a bad value.
    """
    from detkit.inference.tta import TTAOptions

    views = {"--tta-scales": args.tta_scales, "--tta-no-flip": args.tta_no_flip or None}
    merge = {"--tta-merge": args.tta_merge, "--tta-iou": args.tta_iou}
    for flag, value in views.items():
        if value is not None and not args.tta:
            raise UserError(f"{flag} sets the views of test-time augmentation: add --tta")
    for flag, value in merge.items():
        if value is not None and not (args.tta or args.ensemble):
            raise UserError(f"{flag} sets how views or models are merged: add --tta or --ensemble CKPT ...")
    if not (args.tta or args.ensemble):
        return None
    options = {"merge": args.tta_merge or "nms", "iou_thr": args.tta_iou}
    if not args.tta:
        options.update(scales=(1.0,), flip=False)
    elif args.tta_scales is not None:
        options["scales"] = args.tta_scales
    if args.tta_no_flip:
        options["flip"] = False
    try:
        return TTAOptions(**options)
    except ValueError as e:
        raise UserError(str(e).replace("tta scales", "--tta-scales").replace("tta iou_thr", "--tta-iou")) from None


def check_merge(ensemble) -> None:
    """A detector ``Ensemble`` merging by weighted box fusion needs ensemble-boxes: a UserError saying so."""
    wbf = ensemble.kind == "detector" and ensemble.options.merge == "wbf"
    if wbf and importlib.util.find_spec("ensemble_boxes") is None:
        raise UserError(
            "--tta / --ensemble merge detections by weighted box fusion, which needs the ensemble-boxes "
            "package: pip install 'detkit[tta]', or merge by NMS with --tta-merge nms"
        )
