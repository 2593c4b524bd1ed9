"""Peers in CI: tests that compare detkit with a peer package skip where it is missing, except under CI.

`make test` (so `.ci/run`) installs the peers (setup.cfg's `peers` extra) and sets DETKIT_REQUIRE_PEERS=1:
then a missing or broken peer stops the run at its start instead of skipping the comparisons silently.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image

PIL_OPEN = Image.open  # PIL's own, taken before any test module imports a peer
TORCH_SAVE = torch.save
# what importing Ultralytics changes for the whole process: it sets OMP_NUM_THREADS=1 (a tool started by a later
# test then trains with another thread count than the test's in-process reference: different float sums), swaps
# torch.save for its own and PIL.Image.open for a HEIF-installing wrapper
PEER_ENV = (
    "OMP_NUM_THREADS",
    "NUMEXPR_MAX_THREADS",
    "LD_LIBRARY_PATH",
    "TF_CPP_MIN_LOG_LEVEL",
    "TORCH_CPP_LOG_LEVEL",
    "KINETO_LOG_LEVEL",
)
ENV_BEFORE = {k: os.environ.get(k) for k in PEER_ENV}


@pytest.fixture(autouse=True)
def undo_peer_patches():
    """Each test starts with the process as detkit alone leaves it, whatever peer modules were imported before."""
    Image.open = PIL_OPEN
    torch.save = TORCH_SAVE
    for key, value in ENV_BEFORE.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    yield


# the modules the peer tests import: tests/models/test_ultralytics_equivalence.py, tests/tools/test_benchmark.py,
# tests/tools/test_convert_weights.py (Ultralytics), tests/evaluation/test_coco.py (faster-coco-eval)
PEER_MODULES = (
    "ultralytics.nn.tasks",
    "ultralytics.cfg",
    "ultralytics.utils.nms",
    "ultralytics.data.augment",
    "faster_coco_eval",
)


@pytest.fixture
def two_gpus(monkeypatch):
    """A machine with two (pretend) GPUs and no launcher: parse_device accepts cuda:0 / cuda:1; returns the list
    of torch.cuda.set_device calls (tests/utils/test_device.py, tests/engine/test_dist.py)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    current = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: current.append(torch.device(d)))
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "SLURM_NTASKS"):
        monkeypatch.setenv(k, "x")  # recorded, so that teardown restores what was there
        monkeypatch.delenv(k)
    return current


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("DETKIT_REQUIRE_PEERS", "") in ("", "0"):
        return
    broken = []
    for name in PEER_MODULES:
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001  (an ImportError, or a peer failing at import)
            broken.append(f"{name}: {type(e).__name__}: {e}")
    if broken:
        raise pytest.UsageError(
            "DETKIT_REQUIRE_PEERS is set but peer packages do not import (install them with `make peers`):\n  "
            + "\n  ".join(broken)
        )


@dataclass
class ToolRun:
    """What a tool run in this process gave: its exit status and what it printed (as subprocess.run's result)."""

    returncode: int
    stdout: str
    stderr: str


def _detkit_loggers() -> dict[str, tuple]:
    """Every ``detkit*`` logger and the root one: (handlers, level, propagate)."""
    names = ["", *(n for n in logging.root.manager.loggerDict if n == "detkit" or n.startswith("detkit."))]
    return {n: (lg.handlers[:], lg.level, lg.propagate) for n in names for lg in [logging.getLogger(n)]}


def _put_loggers_back(kept: dict[str, tuple]) -> None:
    """Loggers as ``kept`` holds them; ``detkit*`` loggers made since: no handler, level NOTSET, propagating."""
    for name in _detkit_loggers():
        lg = logging.getLogger(name)
        handlers, level, propagate = kept.get(name, ([], logging.NOTSET, True))
        for h in lg.handlers:
            if h not in handlers:
                h.close()
        lg.handlers[:], lg.level, lg.propagate = handlers, level, propagate


def _torch_flags() -> tuple:
    return (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.get_default_dtype(),
    )


def _put_torch_flags_back(flags: tuple) -> None:
    torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags[2], flags[3]
    torch.set_default_dtype(flags[4])


@contextlib.contextmanager
def _process_state_kept(argv0: str, cwd: Path | None) -> Iterator[None]:
    """Run a block as a fresh tool process would and put back what a tool changes for its whole process: the
    environment, sys.argv, the working folder, torch's thread count, random state (a tool seeds it) and
    determinism flags (``--deterministic``), sys.excepthook, every ``detkit*`` logger (a run's log.txt handler),
    Optuna's verbosity."""
    import random

    import numpy as np

    env, argv, here, threads, hook = dict(os.environ), sys.argv[:], os.getcwd(), torch.get_num_threads(), sys.excepthook
    rng = (torch.get_rng_state(), random.getstate(), np.random.get_state())
    loggers, flags = _detkit_loggers(), _torch_flags()
    optuna = sys.modules.get("optuna")
    verbosity = optuna.logging.get_verbosity() if optuna is not None else None
    sys.argv = [argv0]
    try:
        if cwd is not None:
            os.chdir(cwd)
        with warnings.catch_warnings():
            yield
    finally:
        os.chdir(here)
        os.environ.clear()
        os.environ.update(env)
        sys.argv, sys.excepthook = argv, hook
        torch.set_num_threads(threads)
        torch.set_rng_state(rng[0])
        random.setstate(rng[1])
        np.random.set_state(rng[2])
        _put_torch_flags_back(flags)
        _put_loggers_back(loggers)
        if verbosity is not None:
            sys.modules["optuna"].logging.set_verbosity(verbosity)


def run_in_process(tool: str, args: list, cwd: Path | None = None) -> ToolRun:
    """``python tools/<tool>.py ARGS`` (``detkit ARGS`` for tool ``'detkit'``) run by its ``main`` in this process:
    the exit status, stdout and stderr as a subprocess would give them (an uncaught exception: its traceback on
    stderr and status 1), without the seconds a new process spends importing torch. For tests of answers to
    mistakes; runs that train, use signals or several processes stay subprocesses."""
    import importlib

    module = "detkit.cli.main" if tool == "detkit" else f"detkit.cli.{tool}"
    argv0 = "detkit" if tool == "detkit" else str(Path(__file__).resolve().parents[1] / "tools" / f"{tool}.py")
    out, err = io.StringIO(), io.StringIO()
    with _process_state_kept(argv0, cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = importlib.import_module(module).main([str(a) for a in args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) or e.code is None else (print(e.code, file=sys.stderr) or 1)
        except Exception:  # noqa: BLE001  (as an uncaught exception ends a process: traceback, status 1)
            traceback.print_exc()
            code = 1
    return ToolRun(int(code or 0), out.getvalue(), err.getvalue())


@pytest.fixture
def tool_in_process():
    """:func:`run_in_process`: ``tool_in_process('eval', [CONFIG, CKPT], cwd)`` -> ToolRun."""
    return run_in_process
