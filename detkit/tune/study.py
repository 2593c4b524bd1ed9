"""The Optuna side of a search: storage (from a URL), the lock that makes "N trials in total" exact, the study
(created or continued), the sampler and the pruner.

Storages: ``sqlite:///DIR/study.db`` by default (embedded, nothing to start); any SQLAlchemy URL Optuna
accepts (``postgresql://...``, ``mysql+pymysql://...``); ``journal:PATH`` for Optuna's journal file storage
(a log file, also on a shared file system); ``redis://...`` for the journal storage on Redis.
"""

from __future__ import annotations

import contextlib
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

SQLITE_TIMEOUT_S = 60  # a writer waits this long for another process's transaction instead of failing at once
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class StudyError(ValueError):
    """A mistake in the study's input: a storage that cannot be opened, or an existing study that disagrees."""


def default_storage(work_dir: Path) -> str:
    """``sqlite:///WORK_DIR/study.db`` (a relative path stays relative: three slashes)."""
    return f"sqlite:///{Path(work_dir) / 'study.db'}"


def shown_url(url: str) -> str:
    """The URL as it may be printed: a password is masked."""
    if "@" not in url or "://" not in url:
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001  (not a SQLAlchemy URL: print it without its credentials)
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


def sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (None for another URL or an in-memory database)."""
    if not url.startswith("sqlite:///"):
        return None
    name = url[len("sqlite:///") :].split("?", 1)[0]
    return None if name in ("", ":memory:") else Path(name)


def journal_file(url: str) -> Path | None:
    """The log file of a ``journal:PATH`` storage."""
    return Path(url[len("journal:") :]) if url.startswith("journal:") else None


def check_storage_file(url: str) -> None:
    """A SQLite or journal file must go into an existing folder (nothing creates one for it); ``postgres://``
    (SQLAlchemy knows only ``postgresql://``) is named with the fix."""
    if url.startswith("postgres://"):
        fixed = "postgresql://" + url[len("postgres://") :]
        raise StudyError(
            f"--storage {shown_url(url)}: SQLAlchemy names PostgreSQL 'postgresql://', not 'postgres://'; give "
            f"--storage {shown_url(fixed)}"
        )
    target = sqlite_file(url) or journal_file(url)
    if target is not None and not target.absolute().parent.is_dir():
        raise StudyError(
            f"--storage {shown_url(url)}: the folder {target.absolute().parent} does not exist; create it or give "
            "another path"
        )


def open_storage(url: str) -> Any:
    """The Optuna storage for ``url``; a URL that cannot be opened is a StudyError naming it."""
    shown = shown_url(url)
    try:
        if journal_file(url) is not None:
            from optuna.storages.journal import JournalFileBackend

            return optuna.storages.JournalStorage(JournalFileBackend(str(journal_file(url))))
        if url.startswith("redis://"):
            from optuna.storages.journal import JournalRedisBackend

            return optuna.storages.JournalStorage(JournalRedisBackend(url))
        engine = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if url.startswith("sqlite") else None
        return optuna.storages.RDBStorage(url, engine_kwargs=engine)
    except ImportError as e:
        raise StudyError(
            f"--storage {shown}: needs the package {e.name or e} (e.g. pip install psycopg2-binary for "
            "postgresql://, pymysql for mysql+pymysql://, redis for redis://)"
        ) from None
    except Exception as e:  # noqa: BLE001  (SQLAlchemy's and Optuna's errors: one line naming the URL)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise StudyError(f"--storage {shown}: cannot open it ({type(e).__name__}: {first})") from None


@contextlib.contextmanager
def storage_lock(url: str) -> Iterator[None]:
    """Held while a process counts the trials and creates the next one, so that processes sharing a file
    storage (sqlite, journal) end with exactly the trials asked for. A database server gets no lock: processes
    that finish a trial within the same few milliseconds may each start one more (docs/tuning.md)."""
    target = sqlite_file(url) or journal_file(url)
    if target is None:
        yield
        return
    from filelock import FileLock

    with FileLock(str(target) + ".tune-lock"):
        yield


def build_sampler(name: str, trials: int, grid: dict[str, list] | None = None):
    """``tpe`` (random for the first max(3, min(10, trials // 3)) trials), ``random`` or ``grid``."""
    if name == "grid":
        return _GridSampler(grid or {}, seed=0)  # one grid order in every process (no point drawn twice)
    if name == "random":
        return optuna.samplers.RandomSampler()
    return optuna.samplers.TPESampler(n_startup_trials=max(3, min(10, trials // 3)))


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler without its ``study.stop()`` after the last point (the search loop stops itself
    at the grid's size, and ``stop`` is refused outside ``Study.optimize``)."""

    def after_trial(self, study, trial, state, values) -> None:
        return None


def build_pruner(name: str, max_resource: int | None):
    """``median`` (Optuna's MedianPruner: after 5 finished trials, stop a trial whose metric is below the median
    of the others' at the same epoch or iteration), ``hyperband`` (epochs, or iterations with ``train.max_iters``,
    as the resource; ``max_resource`` the run's length, None when it is searched) or ``none``."""
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_resource or "auto")
    return optuna.pruners.MedianPruner()


def open_study(storage: Any, url: str, name: str, direction: str, metric: str, sampler, pruner) -> optuna.Study:
    """Create the study, or continue the one of that name; one that was created for another metric or direction
    is a StudyError (another --work-dir starts a fresh one)."""
    try:
        study = optuna.create_study(
            storage=storage, study_name=name, direction=direction, sampler=sampler, pruner=pruner, load_if_exists=True
        )
    except Exception as e:  # noqa: BLE001  (a storage that opened but refuses the study: one line)
        raise StudyError(
            f"--storage {shown_url(url)}: cannot create or load study '{name}' ({type(e).__name__}: {e})"
        ) from None
    stored = study.user_attrs.get("metric")
    old_direction = study.direction.name.lower()
    if (stored is not None and stored != metric) or old_direction != direction:
        raise StudyError(
            f"study '{name}' in {shown_url(url)} searches to {old_direction} {stored or 'its metric'}, not to "
            f"{direction} {metric}; give the same --metric / --direction to continue it, or another --work-dir to "
            "start a new study"
        )
    if stored is None:
        study.set_user_attr("metric", metric)
    return study


def _wrote_into(trial, work_dir: Path) -> bool:
    """True when ``trial`` (of any study) trained in a ``trial_<n>`` folder of ``work_dir``: its stored work dir
    is there, and it ran on this host or its folder is visible here (a shared file system)."""
    stored = trial.user_attrs.get("work_dir")
    if not isinstance(stored, str) or not stored:
        return False
    path = Path(stored)
    if path.resolve().parent != work_dir.resolve():
        return False
    return trial.user_attrs.get("host") == socket.gethostname() or path.exists()


def check_other_studies(storage: Any, url: str, name: str, work_dir: Path) -> None:
    """Refuse to start study ``name`` in ``work_dir`` when another study with trials owns the folder: its storage
    file lies in ``work_dir`` (the default ``DIR/study.db``, also after the folder was renamed or copied), or
    its trials trained in ``work_dir`` (a storage shared by several studies, each with its own work dir, is
    fine). Its trial folders, trials.csv and best.yaml would be displaced or rewritten. A study that already
    has trials is continued as it is."""
    summaries = optuna.study.get_all_study_summaries(storage, include_best_trial=False)
    if any(s.study_name == name and s.n_trials for s in summaries):
        return
    target = sqlite_file(url) or journal_file(url)
    in_dir = target is not None and target.absolute().parent.resolve() == Path(work_dir).resolve()
    for s in summaries:
        if s.study_name == name or not s.n_trials:
            continue
        if not in_dir:
            study_id = storage.get_study_id_from_name(s.study_name)
            if not any(_wrote_into(t, Path(work_dir)) for t in storage.get_all_trials(study_id, deepcopy=False)):
                continue
        where = str(target) if in_dir else f"--storage {shown_url(url)} (its trials trained in {work_dir})"
        raise StudyError(
            f"{where} holds study '{s.study_name}' ({s.n_trials} trial{'s' if s.n_trials != 1 else ''}): give "
            f"--study-name {s.study_name} to continue it, or another --work-dir for a new study"
        )


def quiet_optuna() -> None:
    """Optuna's own log lines off (the search prints one line per trial); its experimental warnings too."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
