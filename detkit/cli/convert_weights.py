"""Convert torchvision weights (Faster/Mask R-CNN R50-FPN v1, ResNet classifiers) to a detkit checkpoint.

Usage: python tools/convert_weights.py --from torchvision SRC DST [--config CONFIG] [--norm-eps EPS]
Exit status: 0 written, 2 bad input (unreadable file, unknown state dict, bad config).
"""

from __future__ import annotations

import argparse
import sys

from detkit.config import ConfigError, load_config
from detkit.weights.torchvision import ConversionError, convert_checkpoint


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and call :func:`detkit.weights.torchvision.convert_checkpoint`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--from", dest="source", required=True, choices=["torchvision"], help="where the weights come from"
    )
    parser.add_argument("src", help="torchvision state dict (.pth), e.g. fasterrcnn_resnet50_fpn_coco-258fb6c6.pth")
    parser.add_argument("dst", help="detkit checkpoint to write")
    parser.add_argument("--config", help="detkit config to store (resolved) in the checkpoint's meta")
    parser.add_argument(
        "--norm-eps",
        type=float,
        default=0.0,
        help="R-CNN weights: FrozenBN eps written into the stored config's model.backbone "
        "(default 0.0, what torchvision's COCO v1 weights expect; negative: leave as is)",
    )
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config) if args.config else None
        meta = convert_checkpoint(
            args.src, args.dst, config=config, norm_eps=None if args.norm_eps < 0 else args.norm_eps
        )
    except (ConversionError, ConfigError, OSError) as e:
        print(f"convert_weights: error: {e}", file=sys.stderr)
        return 2
    names = meta["class_names"]
    classes = f", {len(names)} classes" if names else ""
    print(f"wrote {args.dst} ({meta['converted_from']}{classes})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
