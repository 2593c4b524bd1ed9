"""Run logging: log.txt, metrics.jsonl, a loss/LR history (history.json), tqdm progress, optional TensorBoard."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from detkit.utils.files import atomic_write, read_jsonl

LOGGER_NAME = "detkit"
LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
LOG_DATEFMT = "%Y-%m-%d %H:%M:%S"


class _HeldRecords(logging.Handler):
    """Keeps the records logged before the work dir may be written (see :func:`open_log_file`)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _ScreenHandler(logging.StreamHandler):
    """The screen's handler (stdout). A reader that closed stdout (``detkit train ... | head -1``) silences it, as
    Python's recipe for a closed pipe does (stdout pointed at devnull), instead of a "Logging error" traceback per
    record; the run goes on and log.txt keeps every record."""

    def handleError(self, record: logging.LogRecord) -> None:
        if not isinstance(sys.exc_info()[1], BrokenPipeError):
            return super().handleError(record)
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())
        except (AttributeError, OSError, ValueError):  # (a stream without a file descriptor: nothing to point)
            self.setStream(open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115  (held as the stream)


def _own_handlers(logger: logging.Logger) -> list[logging.Handler]:
    return [h for h in logger.handlers if getattr(h, "_detkit", False)]


def setup_logger(work_dir: str | Path | None, main_process: bool = True) -> logging.Logger:
    """Log to stdout and ``work_dir/log.txt`` on the main process; only warnings elsewhere, marked ``[rank N]``.

    With ``work_dir`` None on the main process the records are held until :func:`open_log_file` writes
    them into the log file (the trainer opens it once its pre-flight checks have passed).
    """
    logger = logging.getLogger(LOGGER_NAME)
    file_only = logging.getLogger(LOGGER_NAME + ".file")  # progress lines while a tqdm bar owns the terminal
    for lg in (logger, file_only):
        for h in _own_handlers(lg):
            lg.removeHandler(h)
            h.close()
    logger.setLevel(logging.INFO if main_process else logging.WARNING)
    logger.propagate = False
    handlers: list[logging.Handler] = [_ScreenHandler(sys.stdout)]
    if main_process:
        handlers.append(_HeldRecords())
    shown = LOG_FORMAT if main_process else f"[rank {os.environ.get('RANK', '?')}] {LOG_FORMAT}"  # whose warning
    for h in handlers:
        h.setFormatter(logging.Formatter(shown, LOG_DATEFMT))
        h._detkit = True  # type: ignore[attr-defined]
        logger.addHandler(h)
    file_only.setLevel(logger.level)
    file_only.propagate = False
    quiet = logging.NullHandler()  # other ranks: no log file (and no "last resort" printing)
    quiet._detkit = True  # type: ignore[attr-defined]
    file_only.addHandler(handlers[-1] if main_process else quiet)
    if main_process and work_dir is not None:
        open_log_file(work_dir)
    return logger


def open_log_file(work_dir: str | Path) -> logging.FileHandler:
    """Start ``work_dir/log.txt`` (appending) with the records held so far; later records go there too. Returns
    its handler (for :func:`use_log_file` / :func:`close_log_file`)."""
    path = Path(work_dir) / "log.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = logging.FileHandler(path, encoding="utf-8")
    fh.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATEFMT))
    fh._detkit = True  # type: ignore[attr-defined]
    for lg in (logging.getLogger(LOGGER_NAME), logging.getLogger(LOGGER_NAME + ".file")):
        for h in _own_handlers(lg):
            if isinstance(h, _HeldRecords):
                lg.removeHandler(h)
                for record in h.records:  # one handler serves both loggers: replayed once
                    fh.handle(record)
                h.records = []
        lg.addHandler(fh)
    return fh


def use_log_file(handler: logging.FileHandler) -> None:
    """Make ``handler`` the log file of the records from now on (a Trainer's fit, when another Trainer of the
    process was built since: each run's lines go to its own log.txt)."""
    for lg in (logging.getLogger(LOGGER_NAME), logging.getLogger(LOGGER_NAME + ".file")):
        for h in _own_handlers(lg):
            if isinstance(h, logging.FileHandler) and h is not handler:
                lg.removeHandler(h)  # (kept open by its Trainer: it writes there again in its own fit)
        if handler not in lg.handlers:
            lg.addHandler(handler)


def close_log_file(handler: logging.FileHandler | None = None) -> None:
    """Stop writing log.txt (the end of a training): ``handler``'s file is closed (another Trainer's stays), and
    records held for a log file that never opened are dropped; later records of the process (another model built
    in a notebook) go to the screen only, not into the finished run's log."""
    for lg in (logging.getLogger(LOGGER_NAME), logging.getLogger(LOGGER_NAME + ".file")):
        for h in _own_handlers(lg):
            if h is handler or isinstance(h, _HeldRecords):
                lg.removeHandler(h)
                h.close()
    if handler is not None:
        handler.close()


def log_to_file(msg: str, *args, exc_info=None) -> None:
    """Write a record to log.txt only (details that would crowd the screen)."""
    logging.getLogger(LOGGER_NAME + ".file").info(msg, *args, exc_info=exc_info)


def warn_to_file(message: str) -> None:
    """Write ``message`` (no %-formatting) to log.txt only, as a WARNING: what the screen got another way (a
    signal handler's line, the ``detkit train`` message after a second Ctrl-C)."""
    logging.getLogger(LOGGER_NAME + ".file").warning("%s", message)


def progress_enabled(main_process: bool = True) -> bool:
    """Progress bars only on the main process and when stdout and stderr are terminals (no frames in files)."""
    return main_process and sys.stdout.isatty() and sys.stderr.isatty()


def progress_bar(iterable, total: int | None = None, desc: str = "", enabled: bool | None = None, **kwargs):
    """``tqdm`` over ``iterable`` (ETA, rate) when :func:`progress_enabled`, else ``iterable`` itself."""
    if not (progress_enabled() if enabled is None else enabled):
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, dynamic_ncols=True, leave=False, **kwargs)


class RunRecord:
    """metrics.jsonl (one JSON object per evaluation) and history.json (loss / LR series for plots)."""

    def __init__(self, work_dir: str | Path):
        self.dir = Path(work_dir)
        self.metrics_path = self.dir / "metrics.jsonl"
        self.history_path = self.dir / "history.json"
        self.history: dict[str, Any] = {"iter": [], "epoch": [], "lr": [], "loss": {}}

    def start(self, resumed_at: tuple[int, bool] | None, iters_per_epoch: int) -> None:
        """Start the run's record: a resumed run keeps what came before its checkpoint (``resumed_at``: the
        checkpoint's iteration, and whether it was re-counted since), re-counted where its units changed; a new
        run starts fresh. metrics.jsonl is read and written once."""
        if resumed_at is None:
            self.reset()
            return
        at, recounted = resumed_at
        text = "".join(json.dumps(r) + "\n" for r in self.kept_metrics(resumed_at, iters_per_epoch))
        atomic_write(self.metrics_path, lambda f: f.write(text.encode()))
        self._keep_history(at, iters_per_epoch if recounted else None)

    def kept_metrics(self, resumed_at: tuple[int, bool] | None, iters_per_epoch: int) -> list[dict]:
        """The metrics.jsonl rows that :meth:`start` keeps (and writes) for a run resumed at ``resumed_at``: those up
        to the checkpoint's iteration, re-counted in this run's iterations where its units changed ([] for a new
        run); reads the file, writes nothing."""
        if resumed_at is None:
            return []
        at, recounted = resumed_at
        rows = [r for r in read_jsonl(self.metrics_path) if r.get("iter", 0) <= at]  # a resumed run redoes the rest
        if recounted:  # the kept rows in this run's iterations, from each row's epoch (which does not change)
            for r in rows:
                if isinstance(r.get("epoch"), (int, float)):
                    r["iter"] = int(round(r["epoch"] * iters_per_epoch))
        return rows

    def _keep_history(self, after_iter: int, iters_per_epoch: int | None) -> None:
        """Load history.json's points up to ``after_iter``; their iterations re-counted from their epochs with
        ``iters_per_epoch`` (None: kept). A missing or unreadable file leaves the history empty."""
        try:
            h = json.loads(self.history_path.read_text(encoding="utf-8")) if self.history_path.is_file() else None
        except json.JSONDecodeError:
            h = None
        if not h:
            return
        keep = [i for i, it in enumerate(h["iter"]) if it <= after_iter]
        epochs = [h["epoch"][i] for i in keep]
        its = (
            [h["iter"][i] for i in keep]
            if iters_per_epoch is None
            else [int(round(e * iters_per_epoch)) for e in epochs]
        )
        self.history = {
            "iter": its,
            "epoch": epochs,
            "lr": [h["lr"][i] for i in keep],
            "loss": {k: [v[i] for i in keep] for k, v in h["loss"].items()},
        }

    def reset(self) -> None:
        """Start a fresh record (a new run in an existing work dir)."""
        self.history = {"iter": [], "epoch": [], "lr": [], "loss": {}}
        for p in (self.metrics_path, self.history_path):
            if p.is_file():
                p.unlink()

    def add_losses(self, it: int, epoch: float, lr: float, losses: dict[str, float]) -> None:
        """Append one point of the loss / LR series."""
        n = len(self.history["iter"])
        self.history["iter"].append(it)
        self.history["epoch"].append(epoch)
        self.history["lr"].append(lr)
        for k, v in losses.items():
            self.history["loss"].setdefault(k, [math.nan] * n).append(v)
        for v in self.history["loss"].values():
            if len(v) < n + 1:
                v.append(math.nan)

    def add_metrics(self, row: dict) -> None:
        """Append one evaluation (``epoch``, ``iter`` and metric keys) to metrics.jsonl."""
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def metrics(self) -> list[dict]:
        """Every evaluation recorded so far."""
        return read_jsonl(self.metrics_path)

    def save_history(self) -> None:
        """Write history.json atomically."""
        text = json.dumps(self.history)
        atomic_write(self.history_path, lambda f: f.write(text.encode()))


def memory_str(device: torch.device) -> str:
    """Peak memory of this process: CUDA allocator peak on GPU, max RSS on CPU."""
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f}G"
    try:
        import resource

        return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f}G"
    except (ImportError, OSError):
        return "n/a"


class Progress:
    """tqdm bar with ETA / loss / lr / it/s / memory on a TTY, else a log line every ``log_interval`` iters."""

    def __init__(
        self,
        total: int,
        initial: int,
        epoch: int,
        max_epochs: int,
        log_interval: int,
        enabled: bool,
        logger: logging.Logger,
        device: torch.device,
        by_iter: bool = False,
    ):
        self.total, self.n, self.epoch, self.max_epochs = total, initial, epoch, max_epochs
        self.by_iter = by_iter  # total / initial count the run's iterations (train.max_iters), not the epoch's
        self.log_interval, self.logger, self.device = max(1, log_interval), logger, device
        self.start, self.start_n = time.perf_counter(), initial
        self.bar = None
        if progress_enabled(enabled):
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                initial=initial,
                desc="iter" if by_iter else f"epoch {epoch + 1}/{max_epochs}",
                dynamic_ncols=True,
                leave=False,
            )
        self.enabled = enabled

    def update(
        self, losses: dict[str, float], lr: float, global_iter: int, remaining_iters: int, line: bool | None = None
    ) -> None:
        """Advance one iteration; ``losses`` are the latest smoothed values. ``line``: whether to write the log
        line now (the trainer's log points, where the losses are averaged over the processes); None: every
        ``log_interval`` iterations of this bar and at its end."""
        self.n += 1
        if not self.enabled:
            return
        rate = (self.n - self.start_n) / max(time.perf_counter() - self.start, 1e-9)
        mem = memory_str(self.device)
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {losses.get('loss', math.nan):.4f} lr {lr:.3g} mem {mem}", refresh=False)
            self.bar.update(1)
        if line if line is not None else (self.n % self.log_interval == 0 or self.n == self.total):
            eta = time.strftime("%H:%M:%S", time.gmtime(remaining_iters / max(rate, 1e-9)))
            terms = " ".join(f"{k} {v:.4f}" for k, v in losses.items())
            log = self.logger if self.bar is None else logging.getLogger(LOGGER_NAME + ".file")
            if self.by_iter:
                log.info(
                    "iter %d/%d (epoch %d/%d) %s lr %.4g %.2f it/s eta %s mem %s",
                    *(self.n, self.total, self.epoch + 1, self.max_epochs, terms, lr, rate, eta, mem),
                )
                return
            log.info(
                "epoch %d/%d iter %d/%d (global %d) %s lr %.4g %.2f it/s eta %s mem %s",
                self.epoch + 1,
                self.max_epochs,
                self.n,
                self.total,
                global_iter,
                terms,
                lr,
                rate,
                eta,
                mem,
            )

    def restart_rate(self) -> None:
        """Measure the rate (and ETA) from here on: an evaluation inside the bar's span is not training time."""
        self.start, self.start_n = time.perf_counter(), self.n

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()


def tensorboard_writer(work_dir: Path, enabled: bool, logger: logging.Logger):
    """A ``SummaryWriter`` under ``work_dir/tb`` when asked and installed, else None (with a message)."""
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        logger.warning(
            "train.tensorboard is true but tensorboard is not installed "
            "(pip install tensorboard); continuing without it"
        )
        return None
    return SummaryWriter(str(work_dir / "tb"))
