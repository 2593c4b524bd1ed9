"""Plot metric and loss curves of one or several work directories (metrics.jsonl, history.json) to compare runs.

python tools/plot_logs.py WORK_DIR [WORK_DIR ...] --keys bbox/AP loss --out FILE.png [--x epoch|iter]
                          [--labels NAME ...] [--list]
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("work_dirs", nargs="+", help="training work directories")
    ap.add_argument(
        "--keys",
        nargs="+",
        default=["bbox/AP", "loss"],
        help="metric keys (metrics.jsonl), loss names or lr (history.json); default bbox/AP loss",
    )
    ap.add_argument("--out", default="curves.png", help="output PNG")
    ap.add_argument("--x", choices=("epoch", "iter"), default="epoch", help="x axis")
    ap.add_argument("--labels", nargs="+", default=None, help="legend names, one per work directory")
    ap.add_argument("--list", action="store_true", help="print the available keys and exit")
    args = ap.parse_args(argv)

    from detkit.analysis.logs import available_keys, plot_logs

    try:
        if args.list:
            print("\n".join(available_keys(args.work_dirs)))
            return 0
        path = plot_logs(args.work_dirs, args.keys, args.out, args.x, args.labels)
    except (OSError, ValueError) as e:
        print(f"plot_logs.py: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
