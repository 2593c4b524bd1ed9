"""Train a detector on one process, or on many through torchrun.

Usage: python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--load-from CKPT] [--set K=V ...]
                             [--seed N] [--device cpu|cuda|cuda:N] [--amp] [--deterministic]
       torchrun --nproc-per-node N tools/train.py CONFIG ...
Exit status: 0 done, 1 training diverged (non-finite losses), 2 bad input, 130/143 stopped by SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from detkit.config import ConfigError, load_config
from detkit.engine import Trainer, TrainingDiverged, dist

SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", help="YAML config")
    p.add_argument("--work-dir", help="output folder (default: work_dirs/<config stem>)")
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="CKPT",
        help="resume from CKPT, or from WORK_DIR/latest.pth when no path is given",
    )
    p.add_argument("--load-from", metavar="CKPT", help="start from these weights (mismatched shapes dropped)")
    p.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="K=V",
        help="override config keys, e.g. train.max_epochs=24 (+key=value adds a key)",
    )
    p.add_argument("--seed", type=int, help="random seed (overrides the config's seed)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--amp", action="store_true", help="mixed precision (fp16 on CUDA; see train.amp)")
    p.add_argument("--deterministic", action="store_true", help="deterministic kernels (slower)")
    return p.parse_args(argv)


def resume_command(argv: list[str], work_dir: Path) -> str:
    """The command line that resumes this run: same arguments, ``--resume`` instead of ``--load-from``."""
    out, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a in ("--resume", "--load-from", "--work-dir"):
            nxt = argv[i + 1] if i + 1 < len(argv) else ""
            skip = a != "--resume" or (bool(nxt) and not nxt.startswith("-"))
            continue
        if a.startswith(("--resume=", "--load-from=", "--work-dir=")):
            continue
        out.append(a)
    world = dist.get_world_size()
    launcher = f"torchrun --nproc-per-node {world}" if world > 1 else "python"
    return " ".join(
        [
            launcher,
            shlex.quote(sys.argv[0] or "tools/train.py"),
            *map(shlex.quote, out),
            "--work-dir",
            shlex.quote(str(work_dir)),
            "--resume",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, build the Trainer and run it."""
    argv = sys.argv[1:] if argv is None else list(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, args.set)
        work_dir = Path(args.work_dir or cfg.get("work_dir") or Path("work_dirs") / Path(args.config).stem)
        trainer = Trainer(
            cfg,
            work_dir=work_dir,
            device=args.device,
            resume=args.resume,
            load_from=args.load_from,
            seed=args.seed,
            amp=True if args.amp else None,
            deterministic=args.deterministic,
        )
    except (ConfigError, FileNotFoundError, ValueError, KeyError, TypeError, ImportError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"train: error: {msg}", file=sys.stderr)
        dist.destroy()
        return 2
    trainer.resume_hint = resume_command(argv, work_dir)
    try:
        trainer.fit()
    except TrainingDiverged as e:
        print(f"train: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"train: stopped immediately; the last checkpoint is {work_dir / 'latest.pth'}; resume with: "
            f"{trainer.resume_hint}",
            file=sys.stderr,
        )
        return 130
    finally:
        dist.destroy()
    if trainer.interrupted:
        return SIGNAL_EXIT.get(trainer.interrupted, 130)
    return 0


if __name__ == "__main__":
    sys.exit(main())
