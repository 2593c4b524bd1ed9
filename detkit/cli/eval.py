"""Evaluate a checkpoint on the config's data.val and print the metrics (and per-class table).

Usage: python tools/eval.py CONFIG CHECKPOINT [--out metrics.json] [--per-class table.json]
                            [--save-json results.json] [--max-dets N]
                            [--data DATA] [--split val|test]
                            [--set K=V ...] [--device D]
                            [--tta [--tta-scales S,S,...] [--tta-no-flip]] [--tta-merge nms|wbf] [--tta-iou T]
                            [--ensemble CKPT ...] [--tile H,W [--tile-overlap F]]
Metrics are pycocotools' AP / AR (mIoU, aAcc for semantic models; cls/top1, cls/top5, cls/mean_acc,
cls/macro_f1 and a per-class accuracy / precision / recall / F1 table for classifiers) in 0..1, -1 (or '-')
where undefined. --data scores the checkpoint on other data (an Ultralytics data.yaml, a classifier's class
folders), --split test on the test split (the config's data.test, or the data.yaml's test:). --tta evaluates test-time augmentation (the batch at several scales and mirrored, merged);
--ensemble merges the predictions of more checkpoints (same classes; each built with the config it stores,
fed CONFIG's data.val pipeline) with CHECKPOINT's. See docs/inference.md.
--tile predicts each data.val image tile by tile as infer --tile does, merges, and scores the whole images
(a TiledDataset data.val is evaluated so without it; docs/evaluation.md).
A model whose class names differ from data.val's (other names, or the same in another order) is evaluated
with a WARNING line: its labels are matched to the dataset's categories by position.
Exit status: 0 done, 2 bad input (config, checkpoint, data, device, --out).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from detkit.cli.checkpoint_first import checkpoint_first, positionals
from detkit.cli.errors import ArgumentParser, UserError, run_tool, user_errors
from detkit.cli.inputs import checkpoint_arg, config_arg, config_data_paths, device_arg, max_dets_arg, out_file_arg
from detkit.cli.tile_args import add_tile_arguments, check_tile_alone, check_tile_flags, tile_from_args
from detkit.cli.tta_args import add_tta_arguments, check_merge, tta_options
from detkit.cli.ultralytics_args import refuse_ultralytics_words
from detkit.utils.files import atomic_write

TOOL = "eval"


def add_options(p: argparse.ArgumentParser) -> None:
    """The options (every argument but CONFIG CHECKPOINT)."""
    p.add_argument("--out", help="write the metrics to this JSON file ({metric: value})")
    p.add_argument("--per-class", metavar="FILE", help="write the per-class table to this JSON file (records)")
    p.add_argument(
        "--save-json",
        metavar="FILE",
        help="write the predictions as COCO results (image and category ids of the evaluated json) to this file, "
        "as scored: pycocotools' loadRes reads it",
    )
    p.add_argument(
        "--max-dets",
        type=int,
        metavar="N",
        help="detections per image that COCO AP counts (pycocotools' maxDets, default 100: train.eval_max_dets); "
        "raise it for images with more objects",
    )
    p.add_argument(
        "--data",
        metavar="DATA",
        help="evaluate on this data instead: an Ultralytics data.yaml, or a classifier's folder of class folders "
        "(as train --data reads them)",
    )
    p.add_argument(
        "--split",
        choices=("val", "test"),
        default="val",
        help="the config's (or --data's) split to score: data.val (default) or data.test",
    )
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="K=V", help="override config keys")
    p.add_argument("--device", help="cpu, cuda, cuda:N or N (default: cuda when available)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="compile the model's dense parts with torch.compile (a one-time cost of minutes; docs/benchmarks.md)",
    )
    add_tta_arguments(p)
    add_tile_arguments(p, whole_image=False, what="evaluation (each image predicted by tiles, merged, scored whole)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", help="YAML config the checkpoint was trained with, or '-' for the config it stores")
    p.add_argument("checkpoint", help="checkpoint file (.pth)")
    add_options(p)
    refuse_ultralytics_words(p, argv, TOOL)  # conf=0.25 imgsz=640 batch=16, --batch 4: detkit's words
    hint = checkpoint_first(TOOL, argv, positionals(add_options, argv))
    if hint:
        p.error(hint)
    args = p.parse_args(argv)
    check_tile_flags(p, args, "evaluation")
    return args


def format_metrics(metrics: dict[str, float]) -> str:
    """The metric table; its header says the unit (0..1)."""
    width = max([len("metric")] + [len(k) for k in metrics])
    lines = [f"{'metric':<{width}}  value (0..1, -1 = undefined)"]
    lines += [f"{k:<{width}}  {v:.4f}" for k, v in metrics.items()]
    return "\n".join(lines)


def ensemble_wrap(args: argparse.Namespace):
    """What ``evaluate_checkpoint`` wraps the model in for ``--tta`` / ``--ensemble`` (None without them)."""
    options = tta_options(args)
    if options is None:
        return None
    from detkit.inference.ensemble import Ensemble, load_members

    def wrap(model):
        config = None if args.config == "-" else args.config
        others = load_members(args.ensemble, config, next(model.parameters()).device)
        names = [f"checkpoint {c}" for c in (args.checkpoint, *args.ensemble)]
        ensemble = Ensemble([model, *others], options, names=names)
        check_merge(ensemble)
        return ensemble

    return wrap


def compile_wrap(args: argparse.Namespace, wrap):
    """``wrap`` preceded by compiling the loaded model (``--compile``; weights fixed, so frozen)."""
    if not args.compile:
        return wrap

    def compiled(model):
        from detkit.models.compile import compile_model

        compile_model(model, freeze=True)
        return wrap(model) if wrap is not None else model

    return compiled


def scored_split(cfg: dict, args: argparse.Namespace) -> dict:
    """``cfg`` with the split to score (``--split``) as its data.val; a UserError naming the fix when it has none."""
    data = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
    spec = data.get(args.split)
    if isinstance(spec, dict):
        return {**cfg, "data": {**data, "val": spec}}
    where = "the config stored in " + args.checkpoint if args.config == "-" else args.config
    if args.data is not None:
        null = "is null (e.g. trained with data.val=null)" if args.split in data else "is missing"
        raise UserError(
            f"nothing to evaluate on: --data points the config's data.{args.split} section at the data's "
            f"{args.split} split, but in {where} data.{args.split} {null} or the data has no {args.split} split; "
            f"give a config file with a data.{args.split} section (e.g. the packaged config the run started from) "
            "as CONFIG"
        )
    state = "is null (trained without validation)" if args.split in data else "is missing"
    raise UserError(
        f"{where}: data.{args.split} {state}, so there is nothing to evaluate on; give --data DATA.yaml (or a "
        f"classifier's class-folder ROOT), or add a data.{args.split} section, written as data.train is (type, "
        "ann_file, img_dir, pipeline) with the evaluation files"
    )


def check_outputs(args: argparse.Namespace, cfg: dict) -> None:
    """``--out``, ``--per-class`` and ``--save-json``: JSON names, none onto an input or onto another of them,
    and ``--save-json`` only for a model that gives COCO results (checked before the evaluation)."""
    given = [p for p in (args.config, args.checkpoint, *args.ensemble, args.data) if p not in ("-", None)]
    outputs = [
        (f, p) for f, p in (("--out", args.out), ("--per-class", args.per_class), ("--save-json", args.save_json)) if p
    ]
    for k, (flag, path) in enumerate(outputs):  # never onto the config, a checkpoint or the data evaluated on
        check_json_name(flag, path)
        out_file_arg(path, flag, [*given, *config_data_paths(cfg)])
        same = next((f for f, p in outputs[:k] if Path(p).resolve() == Path(path).resolve()), None)
        if same:
            raise UserError(f"{flag} {path} is also {same}'s file: one would overwrite the other; give two names")
    if args.save_json:
        from detkit.evaluation import _is_classifier, _is_semantic

        model = cfg.get("model") or {}
        classifier = _is_classifier(model)
        if classifier or _is_semantic(model, None):
            kind = "classifier" if classifier else "semantic segmentor"
            raise UserError(
                f"--save-json: a {kind} gives no COCO results (no boxes); use --out for its metrics, --per-class for "
                "its table, or detkit infer CONFIG CKPT IMAGES --out-dir DIR for its predictions"
            )


def per_class_records(evaluator) -> dict | list:
    """``--per-class``: the evaluator's per-class table as JSON records (a COCO evaluator's by IoU type,
    ``{"bbox": [...], "segm": [...]}``; a semantic or classification one's a list), nan as null; [] when it
    keeps none."""
    import math

    def record(row) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row._asdict().items()}

    rows = getattr(evaluator, "per_class", None)
    if not rows:
        return []
    if isinstance(rows, dict):
        return {kind: [record(r) for r in table] for kind, table in rows.items()}
    return [record(r) for r in rows]


def tiled_eval(cfg: dict, args: argparse.Namespace, tile) -> dict:
    """``cfg`` with its data.val evaluated on ``--tile`` tiles (a TiledDataset over it), as it is without --tile."""
    if tile is None:
        return cfg
    check_tile_alone(args, tta_options(args))
    if (cfg.get("model") or {}).get("type") == "Classifier":
        raise UserError(f"--tile {args.tile}: tiled evaluation is for detectors; a Classifier labels whole images")
    from detkit.engine.evaluate import tiled_split

    return {**cfg, "data": {**cfg["data"], "val": tiled_split(cfg["data"]["val"], tile.size, tile.overlap)}}


def run(args: argparse.Namespace) -> int:
    """Check the arguments, evaluate, write ``--out`` (and the other files), then print the table."""
    checkpoint_arg(args.checkpoint, None if args.config == "-" else args.config)
    for extra in args.ensemble:
        checkpoint_arg(extra)
    device = device_arg(args.device)
    tile = tile_from_args(args)
    wrap = compile_wrap(args, ensemble_wrap(args))
    cfg = config_arg(args.config, args.set, args.checkpoint, needs=("model",), data_yaml=args.data, hold_out=False)
    cfg = tiled_eval(scored_split(cfg, args), args, tile)
    if args.max_dets is not None:
        cfg = {**cfg, "train": {**(cfg.get("train") or {}), "eval_max_dets": max_dets_arg(args.max_dets)}}
    check_outputs(args, cfg)
    from detkit.engine import dist, evaluate_checkpoint

    rank = 0
    try:  # building the data and the model from the config: a ValueError there is a mistake of input
        with user_errors(TOOL, extra=(ValueError, KeyError, TypeError, ImportError)):
            dist_device = dist.init_distributed(device)
            rank = dist.get_rank()
            metrics, evaluator = evaluate_checkpoint(cfg, args.checkpoint, str(dist_device), wrap)
    finally:
        dist.destroy()
    if rank != 0:
        return 0
    status, written = write_outputs(args, metrics, evaluator)  # first: a reader that stops early loses none
    print(format_metrics(metrics))
    summary = getattr(evaluator, "summary", None)
    if callable(summary):
        print(summary())
    for line in written:
        print(line)
    return status


def write_outputs(args: argparse.Namespace, metrics: dict, evaluator) -> tuple[int, list[str]]:
    """Write ``--out``, ``--per-class`` and ``--save-json``; the exit status and a line for each file written (printed
    after the report, which may go to a reader that closes early: ``detkit eval ... | head -1``)."""
    lines = []
    if args.out:
        text = json.dumps(metrics, indent=2) + "\n"
        atomic_write(args.out, lambda f: f.write(text.encode()))
        lines.append(f"metrics written to {args.out}")
    if args.per_class:
        text = json.dumps(per_class_records(evaluator), indent=2) + "\n"
        atomic_write(args.per_class, lambda f: f.write(text.encode()))
        lines.append(f"per-class table written to {args.per_class}")
    if args.save_json:
        status, line = save_results(evaluator, args.save_json)
        return status, [*lines, *([line] if line else [])]
    return 0, lines


def check_json_name(flag: str, path: str) -> None:
    """A pickle name for a JSON output: MMDetection's ``--out results.pkl`` (its predictions) is refused with the
    option that writes them here."""
    if Path(path).suffix.lower() in (".pkl", ".pickle"):
        raise UserError(
            f"{flag} {path}: detkit writes JSON, not pickles; for the predictions (MMDetection's --out results.pkl) "
            "give --save-json results.json (COCO results), for the metrics --out metrics.json"
        )


def save_results(evaluator, path: str) -> tuple[int, str | None]:
    """Write the COCO results the evaluator scored to ``path``; the exit status and the line that says so. A model
    without COCO results is told on stderr (exit 2, no line)."""
    results = getattr(evaluator, "last_results", None)
    if results is None:
        kind = type(evaluator).__name__
        print(
            f"detkit eval: error: --save-json: a {kind} has no COCO results (semantic maps and classes are not "
            "boxes); nothing written. Use detkit infer CONFIG CKPT IMAGES --out-dir DIR for its outputs",
            file=sys.stderr,
        )
        return 2, None
    text = json.dumps(results) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))
    return 0, f"{len(results)} detections written to {path} (COCO results: the evaluated json's image and category ids)"


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done, 2 a mistake of input (one line on stderr)."""
    return run_tool(TOOL, run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
