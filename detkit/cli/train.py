"""Train a detector on one process, or on many through torchrun.

Usage: python tools/train.py CONFIG [--data DATA.yaml] [--work-dir DIR] [--resume [CKPT] [--allow-data-change]
                             | --exist-ok]
                             [--load-from CKPT] [--set K=V ...] [--seed N] [--device cpu|cuda|cuda:N|N|mps]
                             [--amp] [--deterministic]
       torchrun --nproc-per-node N tools/train.py CONFIG ...
A work dir that already holds a run (checkpoints, metrics.jsonl) is never written over: continue it with
--resume, train into another --work-dir, or pass --exist-ok to move the old run into DIR/previous-N/ (also
before a --resume CKPT of another folder goes on in DIR).
A --resume on other data than the run's (data.train / data.val files, folders, classes) is refused unless
--allow-data-change.
--data DATA.yaml trains the config's recipe on an Ultralytics dataset (docs/training.md, "Coming from Ultralytics").
Exit status: 0 done, 1 the run failed on its own (divergence, an evaluation error not due to the input),
2 bad input (config, data, checkpoint, device, work dir), 130/143 stopped by SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shlex
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from detkit.cli.errors import (
    ArgumentParser,
    UserError,
    format_error,
    loud_warnings,
    other_process,
    tool_label,
    user_error_types,
    worker_message,
)
from detkit.cli.inputs import TORCH_KINDS, check_config_file, config_arg, device_arg
from detkit.cli.ultralytics_args import refuse_ultralytics_words
from detkit.utils.checkpoint import check_checkpoint_file, file_kind

if TYPE_CHECKING:
    from detkit.engine import Trainer

SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}
# while the Trainer is built, these come from the config's values (a bad key of a class, a bad number)
SETUP_ERRORS = (ValueError, KeyError, TypeError, ImportError)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", help="YAML config")
    p.add_argument(
        "--data",
        metavar="DATA",
        help="an Ultralytics data.yaml (the config's datasets read it, the model takes its classes), or for a "
        "classifier config a folder with train/ and val/ class folders",
    )
    p.add_argument(
        "--work-dir",
        help="output folder (default: work_dirs/<config stem>; for a run's own DIR/config.yaml, DIR)",
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="CKPT",
        help="resume from CKPT, or from WORK_DIR/latest.pth when no path is given",
    )
    p.add_argument(
        "--allow-data-change",
        action="store_true",
        help="with --resume: go on although data.train / data.val read other files, folders or classes than the "
        "run did (refused otherwise); the best is then measured anew on this data",
    )
    p.add_argument(
        "--exist-ok",
        action="store_true",
        help="when the work dir holds a run, move it into WORK_DIR/previous-N/ and start anew (nothing is deleted)",
    )
    p.add_argument(
        "--load-from", metavar="CKPT", help="start from these weights (class-specific layers re-initialised)"
    )
    p.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="K=V",
        help="override config keys, e.g. train.max_epochs=24 (+key=value adds a key)",
    )
    p.add_argument("--seed", type=int, help="random seed (overrides the config's seed)")
    p.add_argument("--device", help="cpu, cuda, cuda:N, N or mps (default: cuda when available)")
    p.add_argument("--amp", action="store_true", help="mixed precision (fp16 on CUDA; see train.amp)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="compile the model's dense parts with torch.compile (train.compile) (a one-time cost of minutes; docs/benchmarks.md)",
    )
    p.add_argument("--deterministic", action="store_true", help="deterministic kernels (slower)")
    # torch.distributed.launch (deprecated) passes each process --local-rank N; LOCAL_RANK says the same
    p.add_argument("--local-rank", "--local_rank", type=int, help=argparse.SUPPRESS)
    words = argv if argv is not None else sys.argv[1:]
    refuse_ultralytics_words(p, words, "train")
    refuse_launcher_flags(p, words)
    return p.parse_args(argv)


# other toolkits' ways to ask for several processes -> whose habit it is
LAUNCHER_FLAGS = {
    "--launcher": "MMDetection's tools/train.py",
    "--num-gpus": "Detectron2's train_net.py",
    "--num-machines": "Detectron2's train_net.py",
    "--machine-rank": "Detectron2's train_net.py",
    "--dist-url": "Detectron2's train_net.py",
    "--gpus": "MMDetection 2's / Lightning's",
    "--nproc_per_node": "torchrun's",
    "--nproc-per-node": "torchrun's",
}


def refuse_launcher_flags(p: argparse.ArgumentParser, argv: list[str]) -> None:
    """Answer another toolkit's multi-process flag (``--launcher pytorch``, ``--num-gpus 2``, torchrun's
    ``--nproc-per-node`` given to train.py) with the torchrun command, one line, exit 2."""
    for i, word in enumerate(argv):
        flag, _, value = word.partition("=")
        if flag not in LAUNCHER_FLAGS:
            continue
        value = value or (argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("-") else "")
        n = value if value.isdigit() and flag != "--launcher" else "N"
        # as `detkit train`, as_invoked writes the torchrun line with -m detkit.cli.main train (torchrun runs a
        # script or a module, never a console command); from a checkout, the pip-installed form is added
        installed = "" if sys.argv[0].startswith("detkit") else f"; installed: torchrun --nproc-per-node {n} -m "
        installed += "detkit.cli.main train CONFIG ..." if installed else ""
        p.error(
            f"{flag} is {LAUNCHER_FLAGS[flag]} option; detkit starts one process per GPU (or CPU process) with "
            f"torchrun: torchrun --nproc-per-node {n} tools/train.py CONFIG ... (docs/training.md, 'Distributed'"
            f"{installed})"
        )


def _launcher(tool: str = "train") -> list[str]:
    """How this process was started: ``python tools/train.py``, ``detkit train`` (under torchrun: its form)."""
    from detkit.engine import dist

    argv0 = sys.argv[0] or "tools/train.py"
    world = dist.get_world_size()
    torchrun = ["torchrun", "--nproc-per-node", str(world)] if world > 1 else []
    if argv0.startswith("detkit"):
        return [*torchrun, "-m", "detkit.cli.main", tool] if torchrun else ["detkit", tool]
    return [*(torchrun or ["python"]), shlex.quote(argv0)]


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
        if a == "--exist-ok" or a.startswith(("--resume=", "--load-from=", "--work-dir=")):
            continue
        out.append(a)
    return " ".join([*_launcher(), *map(shlex.quote, out), "--work-dir", shlex.quote(str(work_dir)), "--resume"])


def tool_template(argv0: str) -> str:
    """The command of a sibling tool, ``{}`` for its name: ``detkit {}`` or ``python tools/{}.py``."""
    path = Path(argv0 or "detkit")
    if argv0.startswith("detkit") or path.parent.name == "cli" or path.suffix != ".py":
        return "detkit {}"
    return "python " + shlex.quote(str(path.parent)).replace("{", "{{").replace("}", "}}") + "/{}.py"


def check_inputs(args: argparse.Namespace) -> dict:
    """The checks that need no torch: the config (not a checkpoint: swapped arguments are named), the
    ``--resume CKPT`` / ``--load-from`` files (not missing, empty, text, YAML, ...) and ``--device``; returns
    the config. Raises a ``UserError`` / ``ConfigError`` / ``CheckpointError`` / ``DeviceError``."""
    if args.resume is True and args.exist_ok:  # (with --resume CKPT of another folder, the work dir's run moves)
        raise UserError(
            "--resume continues the run in the work dir and --exist-ok moves it away to start anew: give one of them"
        )
    if args.resume and args.load_from:
        raise UserError(
            f"--resume restores the weights of the checkpoint it continues, so --load-from {args.load_from} would be "
            "ignored: drop --load-from (or --resume, to start a new run from those weights)"
        )
    if args.allow_data_change and not args.resume:
        raise UserError(
            "--allow-data-change lets a --resume go on with other data than the run's; without --resume it does "
            "nothing: add --resume, or drop --allow-data-change"
        )
    if args.seed is not None and args.seed < 0:
        raise UserError(f"--seed {args.seed}: give an integer >= 0")
    given = {"--resume": args.resume if isinstance(args.resume, str) else None, "--load-from": args.load_from}
    given = {flag: path for flag, path in given.items() if path}
    swapped = [flag for flag, path in given.items() if file_kind(path) == "yaml"]
    if swapped and file_kind(args.config) in TORCH_KINDS:
        raise UserError(
            f"CONFIG {args.config} is a PyTorch checkpoint and {swapped[0]} {given[swapped[0]]} a YAML file: the "
            f"two are swapped; the order is CONFIG first, then {swapped[0]} CKPT"
        )
    check_config_file(args.config, command="train")
    for flag, path in given.items():
        check_checkpoint_file(path, f"{flag} checkpoint")
    device_arg(args.device)
    overrides = [*args.set, *(["train.compile=true"] if args.compile else [])]
    return config_arg(args.config, overrides, needs=("model", "data"), data_yaml=args.data)


def default_work_dir(config: str) -> Path:
    """``work_dirs/<config stem>``; for the ``config.yaml`` that a run wrote into its work dir, that dir (so
    that ``train WORK_DIR/config.yaml --resume`` continues the run, and a new run there is refused)."""
    from detkit.engine.workdir import holds_run

    path = Path(config)
    if path.name == "config.yaml" and (holds_run(path.parent) or (path.parent / "log.txt").is_file()):
        return path.parent  # (a run that stopped before its first checkpoint has config.yaml and log.txt)
    return Path("work_dirs") / path.stem


def build_trainer(args: argparse.Namespace, cfg: dict | None = None) -> Trainer:
    """Build the Trainer from ``cfg`` (default: :func:`check_inputs`); every pre-flight check runs here."""
    from detkit.engine import Trainer

    cfg = check_inputs(args) if cfg is None else cfg
    work_dir = Path(args.work_dir or cfg.get("work_dir") or default_work_dir(args.config))
    return Trainer(
        cfg,
        work_dir=work_dir,
        device=args.device,
        resume=args.resume,
        load_from=args.load_from,
        seed=args.seed,
        amp=True if args.amp else None,
        deterministic=args.deterministic,
        exist_ok=args.exist_ok,
        allow_data_change=args.allow_data_change,
    )


_PEER_LOST = re.compile(r"Connection (reset|closed) by peer|ECONNRESET|Broken pipe", re.IGNORECASE)


def _failed(trainer: Trainer, e: BaseException) -> str:
    """One message for an error during training (its traceback is in log.txt: Trainer.fit writes it)."""
    from detkit.engine.workdir import how_to_go_on

    first = (worker_message(str(e)).strip().splitlines() or [type(e).__name__])[0][:300]
    if getattr(trainer, "world", 1) > 1 and _PEER_LOST.search(
        str(e)
    ):  # gloo / NCCL: a peer that died, not this process's fault
        first = f"another process of this run stopped (killed or crashed; its own message says why): {first[:120]}"
    if trainer.main:
        where = f"the traceback is in {trainer.work_dir / 'log.txt'}"
    else:  # only the main process writes log.txt: this process's traceback goes to its stderr
        traceback.print_exception(e, file=sys.stderr)
        where = f"process {trainer.rank}'s traceback is above (log.txt is the main process's)"
    return (
        f"{tool_label('train')}: error: training stopped at epoch {trainer.epoch + 1}, iteration {trainer.iter} "
        f"({type(e).__name__}: {first}); {where}. {how_to_go_on(trainer)}"
    )


def run(trainer: Trainer) -> int:
    """``trainer.fit()`` with every way it can end turned into a message and an exit status."""
    from detkit.engine import TrainingDiverged
    from detkit.engine.trainer import EvaluationFailed
    from detkit.engine.workdir import how_to_go_on

    try:
        with loud_warnings("train", emit=logging.getLogger("detkit").warning):  # one plain line, also in log.txt
            trainer.fit()
    except TrainingDiverged as e:
        print(f"{tool_label('train')}: {e}", file=sys.stderr)
        return 1
    except EvaluationFailed as e:
        print(f"{tool_label('train')}: error: {e}", file=sys.stderr)
        return 2 if isinstance(e.__cause__, user_error_types()) else 1
    except KeyboardInterrupt:
        print(f"{tool_label('train')}: stopped immediately. {how_to_go_on(trainer)}", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001  (one message, the traceback in log.txt)
        print(_failed(trainer, e), file=sys.stderr)
        return 2 if isinstance(e, user_error_types()) else 1
    if trainer.interrupted:
        return SIGNAL_EXIT.get(trainer.interrupted, 130)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, build the Trainer and run it."""
    argv = sys.argv[1:] if argv is None else list(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    args = parse_args(argv)
    try:
        cfg = check_inputs(args)  # before torch is imported: a mistake of input is reported at once
    except user_error_types() as e:
        if not other_process():  # every process finds the same mistake: one message
            print(format_error("train", e), file=sys.stderr)
        return 2
    from detkit.engine import dist

    try:
        with loud_warnings("train"):  # the datasets' warnings while building: one plain line each
            trainer = build_trainer(args, cfg)
    except user_error_types() + SETUP_ERRORS as e:
        if not other_process():
            print(format_error("train", e), file=sys.stderr)
        dist.destroy()
        return 2
    trainer.resume_hint = resume_command(argv, trainer.work_dir)
    if isinstance(args.resume, str):
        trainer.rerun_hint = " ".join([*_launcher(), *map(shlex.quote, argv)])
    trainer.tool = tool_template(sys.argv[0])
    try:
        return run(trainer)
    finally:
        dist.destroy()


if __name__ == "__main__":
    sys.exit(main())
