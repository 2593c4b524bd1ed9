"""Convert torchvision or Ultralytics weights to a detkit checkpoint.

Usage: python tools/convert_weights.py --from torchvision SRC DST [--config CONFIG] [--norm-eps EPS] [--class-names FILE]
       python tools/convert_weights.py --from ultralytics SRC DST [--config CONFIG] [--class-names FILE]
torchvision: Faster/Mask R-CNN R50-FPN v1 and ResNet classifier state dicts. ultralytics: YOLOv8 n/s/m/l/x
detect or segment state dicts (an Ultralytics .pt holds a pickled model: save ``model.state_dict()`` and
``model.names`` first; the refusal prints the line). --class-names: a text file (one name per line), a data.yaml
or a COCO json; Ultralytics weights without names and with 80 classes get COCO's names (a note says so).
Exit status: 0 written, 2 bad input (missing or unreadable weights file, unknown state dict, another YOLO version
or task, bad config, class names of another count, DST that is a folder, exists already or is SRC itself, a
--config whose model the weights do not fit: the message names the config that fits), one line on stderr.
"""

from __future__ import annotations

import argparse
import sys

from detkit.cli.errors import ArgumentParser, UserError, run_tool, tool_label
from detkit.cli.inputs import out_file_arg
from detkit.config import load_config
from detkit.weights.common import ConversionError


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--from",
        dest="source",
        required=True,
        choices=["torchvision", "ultralytics"],
        help="where the weights come from",
    )
    parser.add_argument(
        "src",
        help="state dict (.pth): torchvision's, e.g. fasterrcnn_resnet50_fpn_coco-258fb6c6.pth, or a YOLOv8 one "
        "saved with m = YOLO('best.pt').model; torch.save({'model': m.state_dict(), 'names': m.names}, "
        "'best_state.pth')",
    )
    parser.add_argument("dst", help="detkit checkpoint to write")
    parser.add_argument(
        "--config",
        help="detkit config (path or packaged name) to store, resolved, in the checkpoint's meta; "
        "the converted weights are checked against its model (torchvision: R-CNN weights)",
    )
    parser.add_argument(
        "--class-names",
        metavar="FILE",
        help="class names to store in the checkpoint, in the model's class order: a text file with one name per "
        "line, an Ultralytics data.yaml (its names:) or a COCO json (its categories, in id order); default: the "
        "names saved in SRC (Ultralytics), else COCO's for COCO weights (80 classes)",
    )
    parser.add_argument(
        "--norm-eps",
        type=float,
        help="torchvision R-CNN weights: FrozenBN eps written into the stored config's model.backbone "
        "(default 0.0, what torchvision's COCO v1 weights expect; negative: leave as is)",
    )
    return parser


def convert(args: argparse.Namespace, notes: list[str] | None = None) -> dict:
    """Run the converter of ``args.source``; returns the written checkpoint's meta (``notes`` gets what the user
    should know, e.g. class names that were assumed)."""
    config = load_config(args.config) if args.config else None
    names = getattr(args, "class_names", None)
    if args.source == "ultralytics":
        from detkit.weights import ultralytics

        return ultralytics.convert_checkpoint(
            args.src, args.dst, config=config, config_name=args.config, class_names=names, notes=notes
        )
    from detkit.weights import torchvision

    eps = 0.0 if args.norm_eps is None else args.norm_eps
    return torchvision.convert_checkpoint(
        args.src, args.dst, config=config, norm_eps=None if eps < 0 else eps, config_name=args.config, class_names=names
    )


def _run(args: argparse.Namespace) -> int:
    dst = out_file_arg(args.dst, "DST", inputs=[args.src])
    if dst.exists() or dst.is_symlink():
        raise UserError(f"DST {dst} exists already; converters never overwrite: choose a new path or remove it")
    notes: list[str] = []
    meta = convert(args, notes)
    names = meta["class_names"]
    classes = f", {len(names)} classes: {', '.join(names[:4])}{', ...' if len(names) > 4 else ''}" if names else ""
    print(f"wrote {args.dst} ({meta['converted_from']}{classes})")
    for note in notes:
        print(f"{tool_label('convert_weights')}: note: {note}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and convert; a mistake of input is one line on stderr and exit status 2."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.source != "torchvision" and args.norm_eps is not None:
        parser.error("--norm-eps applies to --from torchvision only")
    return run_tool("convert_weights", _run, args, extra=(ConversionError,))


if __name__ == "__main__":
    sys.exit(main())
