"""Process settings that every tool and ``detkit`` command starts with (before torch is imported), unless the
environment sets them.

- ``OMP_WAIT_POLICY=PASSIVE``: idle OpenMP threads sleep instead of spin. On a CPU shared with data-loader
  workers, other processes or DDP ranks, spinning threads took the cores from the work and ran training several
  times slower (docs/training.md). On a machine that runs nothing else this costs ~5% of a step;
  ``GOMP_SPINCOUNT=300000`` brings back libgomp's default spinning (``OMP_WAIT_POLICY=ACTIVE`` spins without
  limit instead).
- ``MKL_CBWR=AUTO``: MKL results that are the same in every process. By default MKL may take another code path
  in another process of the same run, so that a fresh process's matrix products differ by a rounding and a
  resumed run would not end bit for bit where an uninterrupted one does (docs/training.md, "Exact resume").
  AUTO keeps the CPU's fastest code path.
"""

from __future__ import annotations

import os
import sys

PROCESS_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE", "MKL_CBWR": "AUTO"}


def set_process_defaults() -> None:
    """Set :data:`PROCESS_DEFAULTS` in ``os.environ`` where the environment does not set them (call it before
    torch is imported; imports nothing itself)."""
    for key, value in PROCESS_DEFAULTS.items():
        os.environ.setdefault(key, value)


def quiet_interrupts() -> None:
    """Make Ctrl-C outside a tool's own handling end with one line (``<tool>: stopped by Ctrl-C``) instead of a
    traceback; the exit status stays 130 (Python exits by SIGINT after an unhandled KeyboardInterrupt). Other
    exceptions go to the previous hook."""
    previous = sys.excepthook

    def hook(kind, value, tb) -> None:
        if issubclass(kind, KeyboardInterrupt):
            name = os.path.basename(sys.argv[0] or "detkit")
            print(f"\n{name.removesuffix('.py')}: stopped by Ctrl-C", file=sys.stderr, flush=True)
            return
        previous(kind, value, tb)

    sys.excepthook = hook
