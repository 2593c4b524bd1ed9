"""Parameters per part (backbone, neck, heads) and FLOPs of a config's model at an input size.

python tools/model_stats.py CONFIG [--size H W] [--rois N] [--num-classes N] [--set K=V ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from detkit.cli.errors import ArgumentParser, UserError, run_tool, user_errors
from detkit.cli.inputs import MAX_SIDE, config_arg
from detkit.data.categories import CategoryIndex

TOOL = "model_stats"


def _json_categories(ann: str) -> list[str]:
    """The category names of a COCO json, sorted by id (as CocoDataset numbers them)."""
    try:
        cats = CategoryIndex(json.loads(Path(ann).read_text(encoding="utf-8")).get("categories") or [])
        names = [str(c.get("name", c["id"])) for c in cats.records]  # not validated: a missing name is the id
    except (ValueError, AttributeError, KeyError, TypeError):
        names = []
    if not names:
        raise UserError(f"data.train.ann_file {ann} is not a COCO json with categories; pass --num-classes N")
    return names


def _class_names(cfg: dict, num_classes: int | None) -> list[str] | None:
    """Class names when model.num_classes is null: --num-classes, else those of the training dataset (a COCO json,
    class folders or a semantic dataset's classes, as training would take them)."""
    if num_classes is not None:
        return [f"class_{i}" for i in range(num_classes)]
    if (cfg.get("model") or {}).get("num_classes") is not None:
        return None
    train = (cfg.get("data") or {}).get("train")
    if not isinstance(train, dict):
        raise UserError(
            "model.num_classes is null and the config has no data.train to count the classes; pass --num-classes N"
        )
    ann = train.get("ann_file")
    if ann and Path(ann).is_file() and str(ann).endswith(".json"):  # a COCO json: its categories, no images read
        return _json_categories(ann)
    from detkit.engine import builders

    try:
        return builders.model_class_names(builders.build_dataset(train))
    except (OSError, ValueError, KeyError, TypeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(
            f"model.num_classes is null and data.train could not be read to count the classes ({first}); pass "
            "--num-classes N"
        ) from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument(
        "--size",
        nargs=2,
        type=int,
        default=None,
        metavar=("H", "W"),
        help="input size (rounded up to the model's size divisor); default 640 640 (classifiers 224 224)",
    )
    ap.add_argument("--rois", type=int, default=0, help="also count the RoI heads on N boxes (default: not)")
    ap.add_argument("--num-classes", type=int, default=None, help="when model.num_classes is null")
    ap.add_argument("--set", nargs="*", default=[], metavar="K=V", help="config overrides")
    args = ap.parse_args(argv)
    if args.size is not None and (min(args.size) <= 0 or max(args.size) > MAX_SIDE):
        ap.error(f"--size needs H W of 1 to {MAX_SIDE} px, got {args.size[0]} {args.size[1]}")
    if args.rois < 0:
        ap.error(f"--rois must be >= 0, got {args.rois}")
    if args.num_classes is not None and args.num_classes < 1:
        ap.error(f"--num-classes must be >= 1, got {args.num_classes}")
    return args


def run(args: argparse.Namespace) -> int:
    """Build the config's model and print its parameters and FLOPs per part."""
    from detkit.benchmark.model_stats import format_stats, model_stats
    from detkit.models.backbones.init_weights import without_init_checkpoint
    from detkit.models.build import build_model
    from detkit.models.fit_check import check_parts_fit

    cfg = config_arg(args.config, args.set, needs=("model",))
    with user_errors(TOOL, extra=(ValueError, KeyError, TypeError)):  # building the config's model: input errors
        model = build_model(without_init_checkpoint(cfg), class_names=_class_names(cfg, args.num_classes))
        check_parts_fit(model)
    divisor = int((cfg["model"].get("preprocess") or {}).get("size_divisor", 32))
    classifier = type(model).__name__ == "Classifier"
    size = tuple(args.size) if args.size is not None else (224, 224) if classifier else (640, 640)
    rows, total, hw = model_stats(model, size, args.rois, divisor)
    print(f"{type(model).__name__} from {args.config} ({model.num_classes} classes)")
    print(format_stats(rows, total, hw, args.rois, roi_heads=getattr(model, "box_head", None) is not None))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done, 2 a mistake of input (one line on stderr)."""
    return run_tool(TOOL, run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
