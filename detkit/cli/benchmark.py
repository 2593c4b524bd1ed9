"""Benchmark detkit: data loading (``--task data``), inference and training steps (``infer``/``train``).

Usage: python tools/benchmark.py CONFIG --task data [--split train] [--num-workers 0 2] [--iters N]
                                 [--warmup W] [--set K=V ...] [--md docs/benchmarks.md]
       python tools/benchmark.py CONFIG --task infer|train [--compare torchvision|ultralytics] [--threads 2]
                                 [--size 800 1216] [--train-size 512] [--batch 2] [--device cpu|cuda]
                                 [--compile [--compile-backend inductor] [--compile-mode M]] [--amp bf16|fp16]
                                 [--iters N] [--warmup W] [--repeat K] [--md docs/benchmarks.md]
       python tools/benchmark.py YOLO_CONFIG --task hotspots [--size 640 640] [--batch 8] [--iters N]
With ``--compare torchvision`` (R50-FPN two-stage configs) torchvision's model with identical random weights
runs in the same process, interleaved with detkit's; the ratios are detkit / torchvision. With
``--compare ultralytics`` (YOLO configs; Ultralytics installed for the benchmark only) YOLOv8 with the same
weights: rows forward / end2end (``--size S S``) and train (``--train-size``, ``--batch``). ``--compile`` adds a
copy of detkit's model compiled by ``detkit.models.compile_model`` to the same interleaved runs: each row gets a
``(compiled)`` twin, with the first call's time (compilation included) and the difference from eager.
``--amp bf16|fp16`` (train) adds detkit's step under that autocast (``train.amp``), and the peer's under the same:
an ``(amp ...)`` twin row against the peer as it comes (fp32), its check giving the peer's autocast time too.
``--repeat K`` (infer/train) runs the whole measurement in K fresh processes, one after the other, and reports
the median of each figure, the ratio of every process in the check line (a peer's time moves 5-12% between
processes; detkit.benchmark.repeat).
``--task hotspots`` (YOLO configs) times YOLO's hot spots against the code they replaced (detkit.benchmark.hotspots).
``--md`` takes a new file or an existing markdown/text one (.md, .markdown, .txt), never an input (the tables:
detkit.benchmark.report). A config with
``model.num_classes: null`` needs ``--set model.num_classes=N`` (the benchmark reads no dataset) unless a
``--compare`` peer fixes the count. Segmentors run infer and train (a random label map as the target).
Exit status: 0 done, 2 bad input (config, data, arguments).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from detkit.benchmark.report import append_markdown, append_model_markdown, format_model_table, format_table
from detkit.cli.errors import ArgumentParser, UserError, run_tool, user_errors
from detkit.cli.inputs import config_arg, config_data_paths, device_arg, out_file_arg

TOOL = "benchmark"


def bench_data(cfg: dict, args: argparse.Namespace) -> list[dict]:
    """Images/s of decode + augment + collate for each ``--num-workers`` value (one row each)."""
    from detkit.benchmark.data_loading import measure_throughput
    from detkit.data.build import build_dataloader, build_dataset

    dataset = build_dataset(cfg["data"][args.split])  # check_args: the split exists
    rows = []
    for nw in args.num_workers:
        run_cfg = {**cfg, "data": {**cfg["data"], "num_workers": nw}}
        loader = build_dataloader(run_cfg, args.split, seed=0, dataset=dataset)
        m = measure_throughput(loader, args.iters, warmup=args.warmup)
        del loader  # stops persistent workers before the next run
        rows.append({"split": args.split, "workers": nw, "batch": loader_batch(cfg, args.split), **m})
        print(f"  workers={nw}: {m['images_per_s']:.1f} images/s, {m['ms_per_batch']:.1f} ms/batch", flush=True)
    return rows


def loader_batch(cfg: dict, split: str) -> int:
    data = cfg["data"]
    return int(data["batch_size"] if split == "train" else data.get("val_batch_size") or data["batch_size"])


def run_settings(args: argparse.Namespace):
    """The :class:`~detkit.benchmark.harness.RunSettings` of ``--iters``, ``--warmup``, ``--device``."""
    from detkit.benchmark.harness import RunSettings  # imports torch: not for --help or --task data

    return RunSettings(
        iters=args.iters,
        warmup=args.warmup,
        device=args.device,
        log=print,
        compile=args.compile,
        compile_backend=args.compile_backend,
        compile_mode=args.compile_mode,
        amp=args.amp,
    )


def bench_infer(cfg: dict, args: argparse.Namespace) -> list[dict]:
    """Inference latency and peak memory of detkit (and torchvision) at ``--size``, batch 1 (one row).

    ``--compare ultralytics`` (YOLO configs): rows ``forward`` and ``end2end`` at ``--size`` H (square).
    """
    if args.compare == "ultralytics":
        from detkit.benchmark import yolo

        return yolo.bench_infer(cfg, (args.size or (800, 1216))[0], run_settings(args))
    if is_classifier(cfg):
        from detkit.benchmark import classifier

        return [classifier.bench_infer(cfg, tuple(args.size or (224, 224)), args.compare, run_settings(args))]
    from detkit.benchmark import rcnn

    return [rcnn.bench_infer(cfg, tuple(args.size or (800, 1216)), args.compare, run_settings(args))]


def bench_train(cfg: dict, args: argparse.Namespace) -> list[dict]:
    """Training-step time (forward, backward, SGD step) and peak memory at ``--batch`` x ``--train-size``."""
    if args.compare == "ultralytics":
        from detkit.benchmark import yolo

        return yolo.bench_train(cfg, args.train_size or 512, args.batch, run_settings(args))
    if is_classifier(cfg):
        from detkit.benchmark import classifier

        size = args.train_size or 224
        return [classifier.bench_train(cfg, size, args.batch, args.compare, run_settings(args))]
    from detkit.benchmark import rcnn

    return [rcnn.bench_train(cfg, args.train_size or 512, args.batch, args.compare, run_settings(args))]


def bench_hotspots(cfg: dict, args: argparse.Namespace) -> list[dict]:
    """YOLO's hot spots, each against the code it replaced: C2f in place (``--size``), the assigner (``--batch``)."""
    from detkit.benchmark.hotspots import bench_hotspots as run_hotspots

    return run_hotspots(cfg, (args.size or (640, 640))[0], args.batch, run_settings(args))


def task_rows(task: str, cfg: dict, args: argparse.Namespace) -> list[dict]:
    """The rows of a model task with ``--threads`` set: what each ``--repeat`` process runs."""
    import torch

    torch.set_num_threads(args.threads)
    return TASKS[task](cfg, args)


def is_classifier(cfg: dict) -> bool:
    """A Classifier config (configs/cls/): benchmarked by detkit.benchmark.classifier."""
    return (cfg.get("model") or {}).get("type") == "Classifier"


TASKS: dict[str, Callable[[dict, argparse.Namespace], list[dict]]] = {
    "data": bench_data,
    "infer": bench_infer,
    "train": bench_train,
    "hotspots": bench_hotspots,
}


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="YAML config (a data section for --task data, a model for infer/train)")
    parser.add_argument("--task", choices=sorted(TASKS), default="data", help="what to measure (default data)")
    parser.add_argument("--split", choices=["train", "val", "test"], help="data: the split to load (default train)")
    parser.add_argument("--num-workers", type=int, nargs="+", help="data: worker counts (default 0 2)")
    parser.add_argument("--iters", type=int, help="timed batches / runs / steps (default 50 for data, else 5)")
    parser.add_argument("--warmup", type=int, help="untimed ones first (default 3 for data, else 1)")
    parser.add_argument(
        "--compare",
        choices=["torchvision", "ultralytics"],
        help="infer/train: also run the peer's model with identical weights, interleaved "
        "(torchvision: R50-FPN two-stage configs and ResNet classifiers; ultralytics: YOLO configs)",
    )
    parser.add_argument("--threads", type=int, default=2, help="infer/train: torch CPU threads (default 2)")
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=None,
        metavar=("H", "W"),
        help="infer: image size (default 800 1216; classifiers 224 224)",
    )
    parser.add_argument(
        "--train-size", type=int, default=None, help="train: square image side (default 512; classifiers 224)"
    )
    parser.add_argument("--batch", type=int, help="train: images per step; hotspots: images (default 2)")
    parser.add_argument("--device", help="infer/train: cpu, cuda, cuda:N or N (default: cuda when available)")
    parser.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="K=V",
        help="config overrides, e.g. data.batch_size=8",
    )
    compile_help = "infer/train: also time a copy of detkit's model with its dense parts compiled (torch.compile)"
    parser.add_argument("--compile", action="store_true", help=compile_help)
    parser.add_argument("--compile-backend", default="inductor", help="--compile's backend (default inductor)")
    parser.add_argument("--compile-mode", help="--compile's torch.compile mode (default: torch's default)")
    parser.add_argument(
        "--amp",
        choices=["bf16", "fp16"],
        help="train: also time detkit's step under this autocast (as train.amp) and the peer's under the same",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="K",
        help="infer/train: measure in K fresh processes one after the other and report the medians (default 1)",
    )
    parser.add_argument("--md", help="append the results as markdown rows to this file")
    return parser


MD_SUFFIXES = (".md", ".markdown", ".txt")


def check_md(args: argparse.Namespace, cfg: dict) -> None:
    """``--md`` is none of the inputs (the config, the files and folders its data sections read) and, when it
    exists, a markdown/text file (suffix .md, .markdown or .txt; not JSON, YAML or binary): rows are appended."""
    from detkit.utils.checkpoint import file_kind

    out_file_arg(args.md, "--md", [args.config, *config_data_paths(cfg)])
    p = Path(args.md)
    if p.exists() and (p.suffix.lower() not in MD_SUFFIXES or file_kind(p) not in ("text", "empty")):
        raise UserError(
            f"--md {args.md} is not a markdown file (rows would be appended to it): give a new or existing .md file"
        )


def check_args(args: argparse.Namespace) -> dict:
    """Check --device and --md, load the config and check it has what the task needs; returns the config."""
    args.device = device_arg(args.device)
    cfg = config_arg(args.config, args.overrides)
    need = "data" if args.task == "data" else "model"
    if not isinstance(cfg.get(need), dict):
        raise UserError(f"{args.config} has no '{need}' section to benchmark with --task {args.task}")
    if args.md:
        check_md(args, cfg)
    if args.task == "data":
        splits = [s for s in ("train", "val", "test") if isinstance(cfg["data"].get(s), dict)]
        if args.split not in splits:
            raise UserError(
                f"--split {args.split}: {args.config} has no data.{args.split} section; "
                f"its splits are {', '.join(splits) or 'none'}"
            )
        return cfg
    model = cfg["model"]
    fills_classes = args.compare is not None and args.task in ("infer", "train")  # the peer's class count
    if model.get("num_classes") is None and not fills_classes:
        raise UserError(
            f"{args.config} has model.num_classes: null (taken from the training dataset, which the benchmark "
            "does not read): give it, e.g. --set model.num_classes=80"
        )
    if args.compare == "ultralytics" and args.task in ("infer", "train"):
        from detkit.benchmark.yolo import is_yolo

        with user_errors(TOOL, extra=(ValueError,)):
            is_yolo(cfg)
    return cfg


def run(args: argparse.Namespace) -> int:
    """Run the task, print the table (and append it to ``--md``)."""
    cfg = check_args(args)
    model_task = args.task != "data"
    times = f"{args.iters} timed after {args.warmup} warm-up" + (
        f", in {args.repeat} processes" if args.repeat > 1 else ""
    )
    print(f"benchmark {args.task}: {args.config} ({times})")
    with user_errors(TOOL, extra=(ValueError, KeyError, TypeError)):  # building from the config: input errors
        if args.repeat > 1:
            from detkit.benchmark.repeat import rows_in_processes

            rows = rows_in_processes(task_rows, (args.task, cfg, args), args.repeat, print)
            print(f"medians over {args.repeat} processes")
        elif model_task:
            rows = task_rows(args.task, cfg, args)
        else:
            rows = TASKS[args.task](cfg, args)
    print(format_model_table(rows) if model_task else format_table(rows))
    if args.md:
        if model_task:
            append_model_markdown(args.md, args.config, rows)
        else:
            append_markdown(args.md, args.config, args.task, rows, args.iters)
        print(f"appended {len(rows)} row(s) to {args.md}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse and check the arguments, then run; exit status 0 done, 2 a mistake of input (one line)."""
    parser = _parser()
    args = parser.parse_args(argv)
    model_task = args.task != "data"
    args.iters = args.iters if args.iters is not None else (5 if model_task else 50)
    args.warmup = args.warmup if args.warmup is not None else (1 if model_task else 3)
    if args.num_workers is not None and args.task != "data":
        parser.error(f"--num-workers sets data-loading workers: it goes with --task data, not --task {args.task}")
    if args.batch is not None and args.task not in ("train", "hotspots"):
        parser.error(
            f"--batch sets the images of a step: it goes with --task train or hotspots, not --task {args.task}"
        )
    for flag, value, tasks in (
        ("--split", args.split, ("data",)),
        ("--size", args.size, ("infer", "hotspots")),
        ("--train-size", args.train_size, ("train",)),
    ):
        if value is not None and args.task not in tasks:
            parser.error(f"{flag} goes with --task {' or '.join(tasks)}, not --task {args.task} (it would be ignored)")
    args.split = args.split or "train"
    args.num_workers = args.num_workers if args.num_workers is not None else [0, 2]
    args.batch = args.batch if args.batch is not None else 2
    if args.iters < 1 or args.warmup < 0 or min(args.num_workers) < 0:
        parser.error("--iters must be >= 1, --warmup and --num-workers >= 0")
    if args.compile and args.task not in ("infer", "train"):
        parser.error("--compile goes with --task infer or train")
    if args.repeat < 1 or (args.repeat > 1 and args.task not in ("infer", "train")):
        parser.error("--repeat must be >= 1; above 1 it goes with --task infer or train")
    if args.amp and args.task != "train":
        parser.error(f"--amp times training steps: it goes with --task train, not --task {args.task}")
    if args.threads < 1 or args.batch < 1 or (args.train_size or 32) < 32 or min(args.size or [32]) < 32:
        parser.error("--threads and --batch must be >= 1, --size and --train-size >= 32")
    return run_tool(TOOL, run, args)


if __name__ == "__main__":
    sys.exit(main())
