"""Convert torchvision or Ultralytics weights to a detkit checkpoint.

Usage: python tools/convert_weights.py --from torchvision SRC DST [--config CONFIG] [--norm-eps EPS]
       python tools/convert_weights.py --from ultralytics SRC DST [--config CONFIG]
torchvision: Faster/Mask R-CNN R50-FPN v1 and ResNet classifier state dicts. ultralytics: YOLOv8 n/s/m/l/x
detect or segment state dicts (an Ultralytics .pt holds a pickled model: save ``model.state_dict()`` first).
Exit status: 0 written, 2 bad input (missing or unreadable weights file, unknown state dict, bad config, DST that
is a folder, exists already or is SRC itself, a --config whose model the weights do not fit), always one line on stderr.
"""

from __future__ import annotations

import argparse
import sys

from detkit.cli.errors import ArgumentParser, UserError, run_tool
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
        "saved with torch.save(YOLO('yolov8n.pt').model.float().state_dict(), 'yolov8n_state.pth')",
    )
    parser.add_argument("dst", help="detkit checkpoint to write")
    parser.add_argument(
        "--config",
        help="detkit config (path or packaged name) to store, resolved, in the checkpoint's meta; "
        "the converted weights are checked against its model (torchvision: R-CNN weights)",
    )
    parser.add_argument(
        "--norm-eps",
        type=float,
        help="torchvision R-CNN weights: FrozenBN eps written into the stored config's model.backbone "
        "(default 0.0, what torchvision's COCO v1 weights expect; negative: leave as is)",
    )
    return parser


def convert(args: argparse.Namespace) -> dict:
    """Run the converter of ``args.source``; returns the written checkpoint's meta."""
    config = load_config(args.config) if args.config else None
    if args.source == "ultralytics":
        from detkit.weights import ultralytics

        return ultralytics.convert_checkpoint(args.src, args.dst, config=config)
    from detkit.weights import torchvision

    eps = 0.0 if args.norm_eps is None else args.norm_eps
    return torchvision.convert_checkpoint(
        args.src, args.dst, config=config, norm_eps=None if eps < 0 else eps, config_name=args.config
    )


def _run(args: argparse.Namespace) -> int:
    dst = out_file_arg(args.dst, "DST", inputs=[args.src])
    if dst.exists() or dst.is_symlink():
        raise UserError(f"DST {dst} exists already; converters never overwrite: choose a new path or remove it")
    meta = convert(args)
    names = meta["class_names"]
    classes = f", {len(names)} classes" if names else ""
    print(f"wrote {args.dst} ({meta['converted_from']}{classes})")
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
