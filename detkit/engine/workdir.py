"""The work-dir rule: a new training never writes over a run that is already there.

A work dir *holds a run* when it has a checkpoint (``*.pth``) or ``metrics.jsonl``. Training into it without
``resume`` is refused (:class:`WorkDirInUse`), unless ``exist_ok``: then the previous run's files move into
``DIR/previous-N/`` (the first free N) before the new run starts. Nothing is deleted. A dir without a run that
has files of the names a training writes (``config.yaml``, ``log.txt``, the plots: a run that stopped before its
first checkpoint, or the user's own files) is refused the same way, since the run would write over them. A resume
of another folder's checkpoint into a dir that holds a run of its own (a checkpoint) is refused too, unless
``exist_ok`` moves that run aside first (:func:`check_work_dir`).
"""

from __future__ import annotations

import os
from pathlib import Path

from detkit.engine.preflight import PreflightError

# what a training writes into its work dir (besides *.pth); moved together by ``move_previous_run``
RUN_FILES = (
    "metrics.jsonl",
    "history.json",
    "log.txt",
    "config.yaml",
    "losses.png",
    "lr.png",
    "metrics.png",
    "pr_curves.png",
    "confusion_matrix.png",
    "confusion_matrix.csv",
    "tb",
)


class WorkDirInUse(PreflightError):
    """The work dir already holds a run and neither ``resume`` nor ``exist_ok`` was given."""


def run_files(work_dir: str | os.PathLike) -> list[Path]:
    """The files of a previous run in ``work_dir`` (checkpoints first); [] when it holds none."""
    d = Path(work_dir)
    if not d.is_dir():
        return []
    ckpts = sorted(p for p in d.glob("*.pth") if p.is_file())
    configs = sorted(d.glob("config.before-resume-*.yaml"))  # see keep_changed_config
    return ckpts + [d / n for n in RUN_FILES if (d / n).exists()] + configs


def keep_changed_config(work_dir: str | os.PathLike, text: str) -> Path | None:
    """Before a resumed run writes ``text`` as its config.yaml: when the one there differs, rename it to
    ``config.before-resume-N.yaml`` (first free N) and return that path; None when there is none or it is the same."""
    d = Path(work_dir)
    old = d / "config.yaml"
    try:
        if not old.is_file() or old.read_text(encoding="utf-8") == text:
            return None
    except (OSError, UnicodeDecodeError):
        pass
    dest = _first_free(d, "config.before-resume-{}.yaml")
    os.replace(old, dest)
    return dest


def _first_free(folder: Path, pattern: str) -> Path:
    """``folder / pattern.format(N)`` for the first N = 1, 2, ... that does not exist."""
    n = 1
    while (folder / pattern.format(n)).exists():
        n += 1
    return folder / pattern.format(n)


def holds_run(work_dir: str | os.PathLike) -> bool:
    """True when ``work_dir`` has a checkpoint or ``metrics.jsonl``."""
    d = Path(work_dir)
    return d.is_dir() and (any(p.is_file() for p in d.glob("*.pth")) or (d / "metrics.jsonl").is_file())


def resumes_own_run(work_dir: str | os.PathLike, resume) -> bool:
    """Whether ``resume`` continues the run of ``work_dir``: True (its latest.pth) or a checkpoint in that folder
    (``--resume DIR/epoch_3.pth``); False for None and for a checkpoint of another folder (another run's)."""
    if resume is True:
        return True
    if not resume:
        return False
    return Path(resume).resolve().parent == Path(work_dir).resolve()


def _has_checkpoint(work_dir: Path) -> bool:
    return any(p.is_file() for p in work_dir.glob("*.pth"))


def _check_foreign_resume(d: Path, resume, exist_ok: bool, names: str) -> None:
    """Refuse ``--resume CKPT`` of another folder into ``d`` when ``d`` holds a run of its own (a checkpoint): its
    latest.pth would be replaced by the other run's continuation and the metrics of both mixed. A folder without a
    checkpoint (a resume that stopped before its first one: ``rerun_hint``) is not refused; ``exist_ok`` moves the
    run aside instead."""
    if exist_ok or not resume or resumes_own_run(d, resume) or not _has_checkpoint(d):
        return
    raise WorkDirInUse(
        f"work dir {d} holds another run ({names}) than --resume {resume} continues: its latest.pth would be replaced "
        "and the two runs' metrics mixed; nothing was changed. Resume into that run's own folder (--work-dir "
        f"{Path(resume).parent}), give an empty --work-dir, or pass --exist-ok (exist_ok=True) to move this dir's run "
        "into previous-N/ first (this dir's own run goes on with --resume and no path)"
    )


def check_work_dir(work_dir: str | os.PathLike, resume, exist_ok: bool) -> None:
    """Refuse (without touching anything) to start a new run in a work dir that holds one, or to resume another
    folder's checkpoint into it (:func:`_check_foreign_resume`).

    ``resume`` True means ``work_dir/latest.pth``, which must then exist; a path is checked by the loader.
    ``exist_ok`` with a resume of the work dir's own run is refused (one continues the run, the other moves it).
    """
    d = Path(work_dir)
    if d.exists() and not d.is_dir():
        raise PreflightError(f"work dir {d} is a file, not a folder; choose another --work-dir")
    if exist_ok and resumes_own_run(d, resume):
        raise PreflightError(
            f"--resume {'' if resume is True else f'{resume} '}continues the run in {d} and --exist-ok (exist_ok=True) "
            "moves it away to start anew: give one of them (--exist-ok goes with --resume CKPT of another folder: "
            f"{d}'s run moves to previous-N, CKPT's run goes on here)"
        )
    if resume is True and not (d / "latest.pth").is_file():
        raise FileNotFoundError(
            f"nothing to resume: {d / 'latest.pth'} does not exist; start a new run without --resume, "
            "or give the checkpoint with --resume CKPT"
        )
    files = run_files(d)
    if not files:
        return
    names = ", ".join(p.name for p in files[:4]) + (", ..." if len(files) > 4 else "")
    _check_foreign_resume(d, resume, exist_ok, names)
    if resume or exist_ok:
        return
    if holds_run(d):
        raise WorkDirInUse(
            f"work dir {d} already holds a run ({names}); nothing was changed. Continue it with --resume "
            f"(Trainer: resume=True), train into another --work-dir (work_dir=), or pass --exist-ok (exist_ok=True) "
            f"to move the old run into {d}/previous-N/ first"
        )
    raise WorkDirInUse(
        f"work dir {d} has files that training writes ({names}: a run that stopped before its first checkpoint, "
        f"or files of yours); nothing was changed. Train into another --work-dir (Trainer: work_dir=), or pass "
        f"--exist-ok (exist_ok=True) to move them into {d}/previous-N/ first"
    )


DATA_FOLDER_KEYS = ("img_dir", "mask_dir", "label_dir", "root")  # the folders a dataset reads


def check_outside_data(work_dir: str | os.PathLike, cfg: dict) -> None:
    """Refuse a work dir that is a data folder of the config, or inside one: its checkpoints, logs and plots would
    land among the images (a new class folder of a classifier, files that the next build lists)."""
    data = cfg.get("data") if isinstance(cfg, dict) else None
    from detkit.utils.output_names import data_paths, is_inside

    for key, folder in data_paths(data if isinstance(data, dict) else {}, DATA_FOLDER_KEYS):
        if is_inside(work_dir, folder):
            raise PreflightError(
                f"work dir {work_dir} is inside {key} ({folder}): the run's checkpoints, logs and plots would land "
                "among the data (a classifier would take a new class folder); choose a --work-dir outside the data"
            )


def move_previous_run(work_dir: str | os.PathLike) -> tuple[Path, list[str]] | None:
    """Move the previous run's files (:func:`run_files`) into ``work_dir/previous-N`` (first free N); None when
    there are none.

    Returns the folder and the names moved. Files are renamed, never copied or deleted.
    """
    d = Path(work_dir)
    files = run_files(d)
    if not files:
        return None
    dest = _first_free(d, "previous-{}")
    dest.mkdir()
    moved = []
    for p in files:
        os.replace(p, dest / p.name)
        moved.append(p.name)
    return dest, moved


LOCK_NAME = ".detkit-train.lock"  # held by the process that writes the work dir (never moved, never deleted)


def lock_work_dir(work_dir: str | os.PathLike):
    """Hold an exclusive lock on ``work_dir``'s lock file for as long as the returned file stays open (None where
    the system has no ``flock``): a second training (a resume while the first still runs, the workers that
    outlived a killed torchrun) is refused with a :class:`WorkDirInUse` naming the process that holds it."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        return None
    import errno
    import warnings

    path = Path(work_dir) / LOCK_NAME
    f = open(path, "a+", encoding="utf-8")  # noqa: SIM115  (held open: the lock lives as long as the file)
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        f.seek(0)
        pid = f.read().strip() or "?"
        f.close()
        if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):  # no flock here (Lustre, NFS without lockd)
            warnings.warn(f"{work_dir}: the file system does not lock files ({e.strerror}): no guard against a second "
                          "training writing this work dir", stacklevel=2)  # fmt: skip
            return None
        if pid == str(os.getpid()):
            raise WorkDirInUse(
                f"a Trainer of this process already holds {work_dir} (made and not yet fitted, or still fitting): call "
                "its fit(), or delete it (del trainer), before making another one on this work dir"
            ) from None
        raise WorkDirInUse(
            f"another training (process {pid}) is writing {work_dir}: let it finish or stop it (kill {pid}), then "
            "resume; or train into another --work-dir"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def keep_previous_best(work_dir: str | os.PathLike) -> Path | None:
    """Rename ``best.pth`` to ``best.before-resume-N.pth`` (first free N; a run resumed on other data measures its
    best anew) and return that path; None when there is no best.pth."""
    best = Path(work_dir) / "best.pth"
    if not best.is_file():
        return None
    dest = _first_free(Path(work_dir), "best.before-resume-{}.pth")
    os.replace(best, dest)
    return dest


def claim_work_dir(work_dir: str | os.PathLike, config_text: str, exist_ok: bool, keep_best: bool = False):
    """Make ``work_dir`` the run's (rank 0, after the checks): lock it (one training at a time), move a previous
    run away when ``exist_ok``, open the log, write ``config.yaml`` (an earlier, different one kept beside it),
    and with ``keep_best`` (a resume on other data) keep the run's best.pth aside (:func:`keep_previous_best`).
    Returns the lock file (:func:`lock_work_dir`), held open for the run, and the log file's handler."""
    import logging

    from detkit.engine.logger import open_log_file
    from detkit.engine.preflight import check_writable
    from detkit.utils.files import atomic_write

    logger = logging.getLogger("detkit")
    check_writable(work_dir)
    lock = lock_work_dir(work_dir)
    moved = move_previous_run(work_dir) if exist_ok else None
    log_file = open_log_file(work_dir)
    if moved:
        dest, names = moved
        logger.info("--exist-ok: the previous run (%s) moved to %s", ", ".join(names), dest)
    kept = keep_changed_config(work_dir, config_text)
    if kept is not None:
        logger.info("the config differs from the run's config.yaml: the earlier one is kept as %s", kept)
    atomic_write(Path(work_dir) / "config.yaml", lambda f: f.write(config_text.encode("utf-8")))
    kept_best = keep_previous_best(work_dir) if keep_best else None
    if kept_best is not None:
        logger.info("the best on the run's earlier data is kept as %s", kept_best)
    return lock, log_file


def how_to_go_on(trainer) -> str:
    """How to go on after a run stopped (``trainer``: its ``work_dir``, ``resume_hint`` and optional
    ``rerun_hint``): the resume command when latest.pth exists, else how to start again. The sentence
    ``detkit train`` prints after "stopped immediately", and what log.txt says then."""
    latest = Path(trainer.work_dir) / "latest.pth"
    if latest.exists() and not latest.is_file():  # (the run's other checkpoints are still there)
        return f"{latest} is not a file: move it away, then resume with: {trainer.resume_hint}"
    if latest.is_file():
        return f"The last checkpoint is {latest}; resume with: {trainer.resume_hint}"
    rerun = getattr(trainer, "rerun_hint", None)
    if rerun:  # --resume CKPT into a work dir without a checkpoint yet: the same command starts from CKPT again
        return f"No checkpoint of this run was written yet: run the same command again ({rerun})"
    return (
        "No checkpoint was written yet: start again with --exist-ok (this run's files move to previous-N) or "
        "another --work-dir"
    )
