"""Parameters per part (backbone, neck, heads) and FLOPs of a config's model at an input size.

python tools/model_stats.py CONFIG [--size H W] [--rois N] [--num-classes N] [--set K=V ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _class_names(cfg: dict, num_classes: int | None) -> list[str] | None:
    """Class names when model.num_classes is null: --num-classes, else the training json's categories."""
    if num_classes is not None:
        return [f"class_{i}" for i in range(num_classes)]
    if cfg["model"].get("num_classes") is not None:
        return None
    ann = (cfg.get("data", {}).get("train") or {}).get("ann_file")
    if ann and Path(ann).is_file():
        cats = sorted(json.loads(Path(ann).read_text()).get("categories", []), key=lambda c: c["id"])
        if cats:
            return [str(c.get("name", c["id"])) for c in cats]
    raise ValueError(
        f"model.num_classes is null and the training annotation file ({ann}) is not there to "
        f"count the classes; pass --num-classes N"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument(
        "--size",
        nargs=2,
        type=int,
        default=(640, 640),
        metavar=("H", "W"),
        help="input size (rounded up to the model's size divisor); default 640 640",
    )
    ap.add_argument("--rois", type=int, default=0, help="also count the RoI heads on N boxes (default: not)")
    ap.add_argument("--num-classes", type=int, default=None, help="when model.num_classes is null")
    ap.add_argument("--set", nargs="*", default=[], metavar="K=V", help="config overrides")
    args = ap.parse_args(argv)
    if min(args.size) <= 0 or args.rois < 0:
        print("model_stats.py: error: --size needs positive H W and --rois N >= 0", file=sys.stderr)
        return 2

    from detkit.benchmark.model_stats import format_stats, model_stats
    from detkit.config import load_config
    from detkit.models.build import build_model

    try:
        cfg = load_config(args.config, args.set)
        model = build_model(cfg, class_names=_class_names(cfg, args.num_classes))
        divisor = int((cfg["model"].get("preprocess") or {}).get("size_divisor", 32))
        rows, total, hw = model_stats(model, tuple(args.size), args.rois, divisor)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"model_stats.py: error: {e}", file=sys.stderr)
        return 2
    print(f"{type(model).__name__} from {args.config} ({model.num_classes} classes)")
    print(format_stats(rows, total, hw, args.rois))
    return 0


if __name__ == "__main__":
    sys.exit(main())
