"""The search loop: trials until the study holds N in total (complete + pruned + failed + running), from any
number of processes sharing one storage; one line per finished trial, a tqdm bar over the trials on a terminal,
trials.csv and best.yaml after each trial, plots and a table at the end."""

from __future__ import annotations

import os
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState

from detkit.engine.logger import progress_enabled
from detkit.engine.summary import duration
from detkit.tune import report
from detkit.tune.plots import write_plots
from detkit.tune.space import Param, decode_params, grid_space
from detkit.tune.study import (
    build_pruner,
    build_sampler,
    check_other_studies,
    check_storage_file,
    default_storage,
    open_storage,
    open_study,
    quiet_optuna,
    shown_url,
    storage_lock,
)
from detkit.tune.trial import TrialOutcome, TrialRunner, run_total

SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}
SAME_FAILURES = 3  # this many trials in a row failing with one message stop the search (the cause is not the values)


@dataclass
class Search:
    """A search's settings (the flags of ``tools/tune.py``).

    Args:
        cfg: the resolved base config (``--set`` applied, engine defaults filled in); params: the searched keys
        (:func:`detkit.tune.space.load_space`); work_dir: where the trials, the default storage and the outputs
        go; trials: the number of trials the study should hold in total; metric / direction: a trial's value
        (its last evaluation's metric) and whether higher is better; sampler / pruner: names (``tpe``,
        ``random``, ``grid``; ``median``, ``hyperband``, ``none``) or Optuna objects; storage: an Optuna
        storage URL (default ``sqlite:///WORK_DIR/study.db``); study_name: default the work dir's name;
        timeout: seconds after which no new trial starts; device: the trials' device; tool: command template
        (``detkit {}`` or ``python tools/{}.py``) for the commands printed.
    """

    cfg: dict
    params: list[Param]
    work_dir: Path
    trials: int
    metric: str = "bbox/AP"
    direction: str = "maximize"
    sampler: object = "tpe"
    pruner: object = "median"
    storage: str | None = None
    study_name: str | None = None
    timeout: float | None = None
    device: str | None = None
    tool: str = "detkit {}"
    space_file: str = "the space"

    @property
    def url(self) -> str:
        return self.storage or default_storage(self.work_dir)

    @property
    def name(self) -> str:
        return self.study_name or Path(self.work_dir).resolve().name


@dataclass
class SearchResult:
    """How a search ended: exit status (0 done, 1 no trial completed or the same failure again and again, 130 /
    143 stopped by SIGINT / SIGTERM), the study, and the files written."""

    status: int
    study: optuna.Study
    files: list[Path] = field(default_factory=list)


def _sampler_and_pruner(search: Search) -> tuple[object, object, int]:
    """Optuna objects for the search's sampler and pruner, and the trials it can hold (a grid caps them)."""
    trials = search.trials
    grid = None
    if search.sampler == "grid":
        grid = grid_space(search.params, search.space_file)
        size = 1
        for values in grid.values():
            size *= len(values)
        trials = min(trials, size)
    sampler = build_sampler(search.sampler, trials, grid) if isinstance(search.sampler, str) else search.sampler
    searched = any(p.key in ("train.max_epochs", "train.max_iters") for p in search.params)
    total = None if searched else run_total(search.cfg["train"])[0]  # Hyperband's resource: epochs or iterations
    pruner = build_pruner(search.pruner, total) if isinstance(search.pruner, str) else search.pruner
    return sampler, pruner, trials


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists (owned by someone else)
    return True


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Mark as failed the running trials whose process (on this host) is gone, e.g. killed by SIGKILL."""
    host, dead = socket.gethostname(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") == host and isinstance(pid, int) and pid != os.getpid() and not _alive(pid):
            study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
            dead.append(t.number)
    return dead


class TrialsProgress:
    """One line per finished trial (on stdout) and, on a terminal, a tqdm bar over the study's trials."""

    def __init__(self, total: int, done: int, out: TextIO):
        self.out, self.bar = out, None
        if progress_enabled():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, desc="trials", unit="trial", dynamic_ncols=True)

    def line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.out)
        else:
            print(text, file=self.out, flush=True)

    def running(self, number: int) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"trial {number} running", refresh=True)

    def update(self, done: int) -> None:
        if self.bar is not None:
            self.bar.n = done
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class SearchLoop:
    """Runs the trials of one process; see :func:`run_search`."""

    def __init__(self, search: Search, out: TextIO):
        self.search, self.out = search, out
        self.dir = Path(search.work_dir)
        self.runner = TrialRunner(search.cfg, search.params, self.dir, search.metric, search.device, search.tool)
        self.failures: list[str] = []
        self.warned: set[int] = set()  # best trials whose best.yaml was rebuilt (said once each)
        self.stopped: str | None = None  # why this process stops before the study is full

    def open(self) -> optuna.Study:
        s = self.search
        sampler, pruner, self.total = _sampler_and_pruner(s)
        self.dir.mkdir(parents=True, exist_ok=True)
        check_storage_file(s.url)
        with storage_lock(s.url):  # one process at a time creates the tables and the study
            storage = open_storage(s.url)
            check_other_studies(storage, s.url, s.name, self.dir)
            self.study = open_study(storage, s.url, s.name, s.direction, s.metric, sampler, pruner)
        existing = len(self.study.get_trials(deepcopy=False))
        searched = "; ".join(f"{p.key} {p.describe()}" for p in s.params)
        lines = [
            f"study '{s.name}' in {shown_url(s.url)}: {existing} of {self.total} trials exist; {s.direction} "
            f"{s.metric} over {searched}",
            f"each trial trains in {self.dir / 'trial_<n>'} (its log: log.txt there)",
        ]
        if self.total < s.trials:
            lines.append(f"--sampler grid: the space has {self.total} points; the study stops at {self.total} trials")
        print("\n".join(lines), file=self.out, flush=True)
        return self.study

    def next_trial(self) -> optuna.Trial | None:
        """A new trial, or None when the study holds its trials (count and creation under the storage lock)."""
        with storage_lock(self.search.url):
            fail_dead_trials(self.study)
            if len(self.study.get_trials(deepcopy=False)) >= self.total:
                return None
            trial = self.study.ask()
            trial.set_user_attr("host", socket.gethostname())  # who runs it (fail_dead_trials)
            trial.set_user_attr("pid", os.getpid())
            trial.set_user_attr("work_dir", str(self.runner.trial_dir(trial.number)))
        return trial

    def record(self, trial: optuna.Trial, outcome: TrialOutcome) -> FrozenTrial:
        if outcome.message:
            trial.set_user_attr("message", outcome.message)
        self.study.tell(trial, outcome.value if outcome.state == TrialState.COMPLETE else None, outcome.state)
        return next(t for t in self.study.get_trials(deepcopy=False) if t.number == trial.number)

    def same_failure(self, outcome: TrialOutcome) -> bool:
        """True when the last SAME_FAILURES trials of this process failed with one message (numbers aside).

        A failure that the sampled values caused (``outcome.sampled``: divergence, a refused sampled config) is
        left out: it neither counts nor breaks the run of failures; other values may well train."""
        if outcome.state != TrialState.FAIL:
            self.failures = []
            return False
        if outcome.sampled:
            return False
        self.failures.append(re.sub(r"\d+", "N", outcome.message))
        return len(self.failures) >= SAME_FAILURES and len(set(self.failures[-SAME_FAILURES:])) == 1

    def run(self) -> int:
        started = time.monotonic()
        trials = self.study.get_trials(deepcopy=False)
        progress = TrialsProgress(self.total, sum(t.state.is_finished() for t in trials), self.out)
        status = 0
        try:
            while True:
                if self.search.timeout is not None and time.monotonic() - started >= self.search.timeout:
                    self.stopped = f"--timeout {self.search.timeout:g}s reached: no new trial started"
                    break
                trial = self.next_trial()
                if trial is None:
                    break
                progress.running(trial.number)
                outcome = self.runner(trial)
                frozen = self.record(trial, outcome)
                trials = self.study.get_trials(deepcopy=False)
                best = report.best_trial(trials, self.search.direction)
                progress.line(report.trial_line(frozen, self.search.params, self.search.metric, best))
                progress.update(sum(t.state.is_finished() for t in trials))
                self.write_tables(trials)
                if outcome.interrupted:
                    self.stopped = f"stopped by {outcome.interrupted} (trial {trial.number} recorded as failed)"
                    status = SIGNAL_EXIT.get(outcome.interrupted, 130)
                    break
                if self.same_failure(outcome):
                    self.stopped = (
                        f"{SAME_FAILURES} trials in a row failed with the same error ({outcome.message}); fix its "
                        "cause and run the command again (failed trials count toward --trials: raise it, or give "
                        "another --work-dir)"
                    )
                    status = 1
                    break
        finally:
            progress.close()
        return status

    def write_tables(self, trials: list[FrozenTrial]) -> list[Path]:
        s = self.search
        report.write_trials_csv(self.dir / "trials.csv", trials, s.params, s.metric)
        written = [self.dir / "trials.csv"]
        best = report.best_trial(trials, s.direction)
        if best is not None:
            cmd = report.train_command(s.tool, self.dir / "best.yaml", self.dir)
            why = report.write_best_yaml(self.dir / "best.yaml", s.cfg, s.params, best, s.metric, s.name, cmd)
            if why and best.number not in self.warned:
                self.warned.add(best.number)
                print(
                    f"warning: best.yaml is this search's config with trial {best.number}'s values, not its own "
                    f"config.yaml ({why})",
                    file=self.out,
                    flush=True,
                )
            written.append(self.dir / "best.yaml")
        return written

    def finish(self, status: int) -> SearchResult:
        """Tables, plots and the closing summary (every process writes them; the last one leaves the full view)."""
        s = self.search
        trials = self.study.get_trials(deepcopy=False)
        files = self.write_tables(trials) if trials else []
        keys = report.param_keys(trials, s.params)
        plots, notes = write_plots(self.study, keys, s.metric, self.dir)
        files += plots
        best = report.best_trial(trials, s.direction)
        lines = [
            f"study '{s.name}' in {shown_url(s.url)}: {report.counts(trials)}; {s.direction} {s.metric}",
            *(report.summary_lines(trials, s.params, s.metric, s.direction) if trials else []),
        ]
        if best is not None:
            lines.append(
                f"best: trial {best.number}, {s.metric} {best.value:.4f} "
                f"({report.shown_params(decode_params(s.params, best.params))}) -> {self.dir / 'best.yaml'}"
            )
        lines.append("files: " + ", ".join([str(files[0])] + [p.name for p in files[1:]]) if files else "files: none")
        lines += [f"  {n}" for n in notes]
        if self.stopped:
            lines.append(self.stopped)
        if best is not None:
            lines.append(f"train it further: {report.train_command(s.tool, self.dir / 'best.yaml', self.dir)}")
        running = sum(t.state == TrialState.RUNNING for t in trials)
        if running:
            lines.append(
                f"{running} trial(s) still running in other processes; the last process to end rewrites these files"
            )
        print("\n".join(lines), file=self.out, flush=True)
        finished_all = len(trials) >= self.total and not running
        if status == 0 and finished_all and best is None:
            print(f"no trial completed: see the messages in {self.dir / 'trials.csv'}", file=self.out)
            status = 1
        return SearchResult(status, self.study, files)


def run_search(search: Search, out: TextIO | None = None) -> SearchResult:
    """Run (or continue) the study of ``search`` until it holds ``search.trials`` trials; write trials.csv,
    best.yaml and the plots into ``search.work_dir`` and print a line per trial and a closing table.

    Raises StudyError for a storage that cannot be opened or a study that disagrees (metric, direction), and
    SpaceError for a grid search over a float range without a step; a trial's own failure is recorded.
    """
    out = out or sys.stdout
    quiet_optuna()
    loop = SearchLoop(search, out)
    loop.open()
    started = time.monotonic()
    status = loop.run()
    result = loop.finish(status)
    print(f"search time: {duration(time.monotonic() - started)}", file=out, flush=True)
    return result
