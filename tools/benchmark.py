"""Benchmark detkit: data-loading throughput (``--task data``); model tasks plug into TASKS.

Usage: python tools/benchmark.py CONFIG --task data [--split train] [--num-workers 0 2] [--iters N]
                                 [--warmup W] [--set K=V ...] [--md docs/benchmarks.md]
Exit status: 0 done, 2 bad input (config, data, arguments).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path
from typing import Callable

import _bootstrap  # noqa: F401  (puts the checkout on sys.path)

from detkit.config import ConfigError, load_config  # noqa: E402


def bench_data(cfg: dict, args: argparse.Namespace) -> list[dict]:
    """Images/s of decode + augment + collate for each ``--num-workers`` value (one row each)."""
    from detkit.data.build import build_dataloader, build_dataset, measure_throughput

    dataset = build_dataset(cfg["data"][args.split] if args.split in cfg["data"] else cfg["data"]["val"])
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


TASKS: dict[str, Callable[[dict, argparse.Namespace], list[dict]]] = {"data": bench_data}


def format_table(rows: list[dict]) -> str:
    """A plain-text table of the rows."""
    head = f"{'split':<6} {'workers':>7} {'batch':>5} {'images/s':>9} {'ms/batch':>9}"
    lines = [head, "-" * len(head)]
    lines += [f"{r['split']:<6} {r['workers']:>7} {r['batch']:>5} {r['images_per_s']:>9.1f} "
              f"{r['ms_per_batch']:>9.1f}" for r in rows]
    return "\n".join(lines)


def append_markdown(path: str, config: str, task: str, rows: list[dict], iters: int) -> None:
    """Append one markdown table row per result to ``path`` (header written when the file is new); atomic."""
    p = Path(path)
    text = p.read_text(encoding="utf-8") if p.exists() else ""
    header = ("| date | task | config | split | workers | batch | images/s | ms/batch | iters | machine |\n"
              "|---|---|---|---|---|---|---|---|---|---|\n")
    if "| date | task | config |" not in text:
        text += ("\n" if text and not text.endswith("\n") else "") + ("\n" if text else "") + header
    machine = f"{platform.machine()} {os.cpu_count()} CPUs, {platform.system()}"
    date = datetime.date.today().isoformat()
    for r in rows:
        text += (f"| {date} | {task} | {config} | {r['split']} | {r['workers']} | {r['batch']} | "
                 f"{r['images_per_s']:.1f} | {r['ms_per_batch']:.1f} | {iters} | {machine} |\n")
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, p)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the task, print the table (and append it to ``--md``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="YAML config with a data section")
    parser.add_argument("--task", choices=sorted(TASKS), default="data", help="what to measure (default data)")
    parser.add_argument("--split", choices=["train", "val", "test"], default="train")
    parser.add_argument("--num-workers", type=int, nargs="+", default=[0, 2], help="worker counts (default 0 2)")
    parser.add_argument("--iters", type=int, default=50, help="timed batches per run (default 50)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches first (default 3)")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="K=V",
                        help="config overrides, e.g. data.batch_size=8")
    parser.add_argument("--md", help="append the results as markdown rows to this file")
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 0 or min(args.num_workers) < 0:
        parser.error("--iters must be >= 1, --warmup and --num-workers >= 0")
    try:
        cfg = load_config(args.config, args.overrides)
        if args.task == "data" and not isinstance(cfg.get("data"), dict):
            raise ConfigError(f"{args.config}: no 'data' section to benchmark")
        print(f"benchmark {args.task}: {args.config} ({args.iters} batches after {args.warmup} warm-up)")
        rows = TASKS[args.task](cfg, args)
    except (ConfigError, OSError, KeyError, ValueError, TypeError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"benchmark: error: {type(e).__name__}: {msg}", file=sys.stderr)
        return 2
    print(format_table(rows))
    if args.md:
        append_markdown(args.md, args.config, args.task, rows, args.iters)
        print(f"appended {len(rows)} row(s) to {args.md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
