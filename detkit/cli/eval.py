"""Evaluate a checkpoint on the config's data.val and print the metrics (and per-class table).

Usage: python tools/eval.py CONFIG CHECKPOINT [--out metrics.json] [--set K=V ...] [--device D]
Exit status: 0 done, 2 bad input (config, checkpoint or data).
"""

from __future__ import annotations

import argparse
import json
import sys

from detkit.config import ConfigError, load_config
from detkit.engine import dist, evaluate_checkpoint
from detkit.utils.files import atomic_write


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", help="YAML config the checkpoint was trained with")
    p.add_argument("checkpoint", help="checkpoint file (.pth)")
    p.add_argument("--out", help="write the metrics to this JSON file")
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="K=V", help="override config keys")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Evaluate, print the table, write ``--out``."""
    args = parse_args(argv)
    rank = 0
    try:
        cfg = load_config(args.config, args.set)
        device = dist.init_distributed(args.device)
        rank = dist.get_rank()
        metrics, evaluator = evaluate_checkpoint(cfg, args.checkpoint, str(device))
    except (ConfigError, FileNotFoundError, ValueError, KeyError, TypeError, ImportError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"eval: error: {msg}", file=sys.stderr)
        return 2
    finally:
        dist.destroy()
    if rank != 0:
        return 0
    width = max([len("metric")] + [len(k) for k in metrics])
    print(f"{'metric':<{width}}  value")
    for k, v in metrics.items():
        print(f"{k:<{width}}  {v:.4f}")
    summary = getattr(evaluator, "summary", None)
    if callable(summary):
        print(summary())
    if args.out:
        text = json.dumps(metrics, indent=2) + "\n"
        atomic_write(args.out, lambda f: f.write(text.encode()))
        print(f"metrics written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
