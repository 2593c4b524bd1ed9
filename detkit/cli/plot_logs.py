"""Plot metric and loss curves of one or several work directories (metrics.jsonl, history.json) to compare runs.

python tools/plot_logs.py WORK_DIR [WORK_DIR ...] [--keys bbox/AP loss] --out FILE.png [--x epoch|iter]
                          [--labels NAME ...] [--list]

Metric panels (bbox/AP, segm/AP, sem/mIoU, ...) are in 0..1, as in metrics.jsonl.
Exit status: 0 done, 2 bad input (work directories, keys, --out).
"""

from __future__ import annotations

import argparse
import sys

from detkit.cli.errors import ArgumentParser, run_tool, user_errors
from detkit.cli.inputs import input_arg, out_file_arg

TOOL = "plot_logs"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("work_dirs", nargs="+", help="training work directories")
    ap.add_argument(
        "--keys",
        nargs="+",
        default=None,
        help="metric keys (metrics.jsonl), loss names or lr (history.json); default: the run's "
        "train.best_metric (bbox/AP, sem/mIoU, cls/top1, ...) and loss",
    )
    ap.add_argument("--out", default="curves.png", help="output image (.png, .pdf, .svg, ...)")
    ap.add_argument("--x", choices=("epoch", "iter"), default="epoch", help="x axis")
    ap.add_argument("--labels", nargs="+", default=None, help="legend names, one per work directory")
    ap.add_argument("--list", action="store_true", help="print the available keys and exit")
    args = ap.parse_args(argv)
    if args.labels is not None and len(args.labels) != len(args.work_dirs):
        ap.error(f"--labels: {len(args.labels)} names for {len(args.work_dirs)} work directories")
    return args


def default_keys(dirs: list) -> list[str]:
    """The runs' ``train.best_metric`` (from their config.yaml; else the first of bbox/AP, segm/AP, sem/mIoU,
    cls/top1 they logged) and ``loss``, those the runs have."""
    import yaml

    from detkit.analysis.logs import available_keys

    keys = available_keys(dirs)
    best = None
    for d in dirs:
        try:
            cfg = yaml.safe_load((d / "config.yaml").read_text(encoding="utf-8")) or {}
            best = (cfg.get("train") or {}).get("best_metric")
        except (OSError, yaml.YAMLError, AttributeError):
            continue
        if best in keys:
            break
    if best not in keys:
        best = next((k for k in ("bbox/AP", "segm/AP", "sem/mIoU", "cls/top1") if k in keys), None)
    return [k for k in (best, "loss") if k in keys] or keys[:2]


def run(args: argparse.Namespace) -> int:
    """Check the work directories and --out, then list the keys or plot them."""
    from detkit.analysis.logs import available_keys, plot_logs  # light: matplotlib only when plotting

    dirs = [input_arg(d, "WORK_DIR", folder=True) for d in args.work_dirs]
    with user_errors(TOOL, extra=(ValueError,)):  # a work dir without logs, an unknown key: input errors
        if args.list:
            print("\n".join(available_keys(dirs)))
            return 0
        logs = [d / name for d in dirs for name in ("metrics.jsonl", "history.json")]
        out = out_file_arg(args.out, "--out", [p for p in logs if p.exists()])
        path = plot_logs(dirs, args.keys or default_keys(dirs), out, args.x, args.labels)
    print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done, 2 a mistake of input (one line on stderr)."""
    return run_tool(TOOL, run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
