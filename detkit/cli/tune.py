"""Search hyperparameters with Optuna: each trial trains CONFIG with values drawn from SPACE.yaml.

Usage: python tools/tune.py CONFIG --space SPACE.yaml --trials N --work-dir DIR [--data DATA.yaml]
           [--metric NAME] [--direction maximize] [--sampler tpe|random|grid] [--pruner median|hyperband|none]
           [--storage URL] [--study-name NAME] [--timeout S] [--set K=V ...]
Trial n trains in DIR/trial_<n>/. The study lives in --storage (default sqlite:///DIR/study.db): running the
same command again, or in several processes or machines at once, continues it until N trials exist in total
(complete, pruned and failed). DIR gets trials.csv, best.yaml (train it with tools/train.py), history.png,
slices.png and, with 2+ parameters, importance.png and parallel.png. docs/tuning.md has the space format.
Exit status: 0 done, 1 no trial completed (or the same error failed 3 trials in a row), 2 bad input (config,
space, data, storage, a study with another metric, a work dir that holds another study), 130/143 stopped
by SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

from detkit.cli.errors import ArgumentParser, UserError, run_tool, tool_label, user_error_types
from detkit.cli.inputs import check_config_file, config_arg, input_arg, out_dir_arg
from detkit.cli.ultralytics_args import refuse_ultralytics_words

TOOL = "tune"
OUTPUTS = ("trials.csv", "best.yaml", "study.db", "history.png", "slices.png", "importance.png", "parallel.png")
SETUP_ERRORS = (ValueError, KeyError, TypeError, ImportError)  # building the data from the config's values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", help="YAML config every trial starts from")
    p.add_argument("--space", required=True, metavar="SPACE.yaml", help="config keys mapped to distributions")
    p.add_argument("--trials", required=True, type=int, metavar="N", help="trials the study holds in total")
    p.add_argument("--work-dir", required=True, metavar="DIR", help="trials, outputs and the default storage")
    p.add_argument(
        "--data",
        metavar="DATA",
        help="an Ultralytics data.yaml that the config's datasets read, or a classifier's folder of train/ and "
        "val/ class folders (as in train)",
    )
    p.add_argument(
        "--metric",
        help="a trial's value: this metric of its last evaluation (default: bbox/AP for a COCO evaluator, else "
        "the config's train.best_metric or the evaluator's main metric, e.g. cls/top1 for a classifier)",
    )
    p.add_argument(
        "--direction", default="maximize", choices=("maximize", "minimize"), help="default maximize: higher is better"
    )
    p.add_argument(
        "--sampler", default="tpe", choices=("tpe", "random", "grid"), help="default tpe; grid: each combination once"
    )
    p.add_argument(
        "--pruner",
        default="median",
        choices=("median", "hyperband", "none"),
        help="default median: stop a trial whose evaluation falls below the median of the others at that epoch",
    )
    p.add_argument("--storage", metavar="URL", help="Optuna storage URL (default sqlite:///DIR/study.db)")
    p.add_argument("--study-name", metavar="NAME", help="default: the name of DIR (a work dir holds one study)")
    p.add_argument("--timeout", type=float, metavar="S", help="start no new trial after S seconds")
    p.add_argument(
        "--set", nargs="+", action="extend", default=[], metavar="K=V", help="override config keys in every trial"
    )
    refuse_ultralytics_words(p, argv if argv is not None else sys.argv[1:], TOOL)
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> dict:
    """The checks that need no torch (numbers, files, folder, Optuna present); returns the loaded config."""
    if args.trials < 1:
        raise UserError(f"--trials must be >= 1, got {args.trials}")
    if args.timeout is not None and args.timeout <= 0:
        raise UserError(f"--timeout must be a number of seconds > 0, got {args.timeout:g}")
    if importlib.util.find_spec("optuna") is None:
        raise UserError("tune needs Optuna: pip install 'detkit[tune]' (or pip install optuna)")
    input_arg(args.space, "--space")
    work_dir = out_dir_arg(args.work_dir, "--work-dir")
    for name in OUTPUTS:
        for flag, given in (("CONFIG", args.config), ("--space", args.space)):
            if os.path.exists(given) and (work_dir / name).exists() and os.path.samefile(given, work_dir / name):
                raise UserError(
                    f"{flag} {given} is {work_dir / name}, which the search writes; move it or choose another --work-dir"
                )
    check_config_file(args.config, command=TOOL)
    return config_arg(args.config, args.set, needs=("model", "data"), data_yaml=args.data)


def run(args: argparse.Namespace) -> int:
    """Check every input, then run the search."""
    cfg = check_args(args)
    from detkit.cli.train import tool_template
    from detkit.engine import resolve_config
    from detkit.tune import Search, load_space, run_search
    from detkit.tune.preflight import check_data_and_metric
    from detkit.tune.trial import first_line

    cfg = resolve_config(cfg)
    params = load_space(args.space, cfg)
    try:
        args.metric = check_data_and_metric(cfg, args.metric)
    except SETUP_ERRORS as e:
        if isinstance(e, user_error_types()):
            raise
        raise UserError(f"the config's data cannot be built ({first_line(e)})") from e
    search = Search(
        cfg=cfg,
        params=params,
        work_dir=args.work_dir,
        trials=args.trials,
        metric=args.metric,
        direction=args.direction,
        sampler=args.sampler,
        pruner=args.pruner,
        storage=args.storage,
        study_name=args.study_name,
        timeout=args.timeout,
        tool=tool_template(sys.argv[0]),
        space_file=args.space,
    )
    try:
        return run_search(search).status
    except KeyboardInterrupt:
        print(f"{tool_label(TOOL)}: stopped; run the same command again to continue the study", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    args = parse_args(argv)
    return run_tool(TOOL, run, args, extra=_extra_errors())


def _extra_errors() -> tuple[type[BaseException], ...]:
    """The search's own input errors (a storage that cannot be opened, a study that disagrees), once importable."""
    if importlib.util.find_spec("optuna") is None:
        return ()
    from detkit.tune.study import StudyError

    return (StudyError,)


if __name__ == "__main__":
    sys.exit(main())
