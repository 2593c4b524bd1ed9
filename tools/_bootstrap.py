"""Put the checkout on sys.path so `python tools/x.py` works without installing detkit.

Also makes idle OpenMP threads sleep instead of spin (``OMP_WAIT_POLICY=PASSIVE``, unless the environment
sets it): on a CPU shared with data-loader workers, other processes or DDP ranks, spinning threads took
the cores from the work and ran training several times slower (docs/training.md). On a machine that runs
nothing else this costs ~5% of a step; ``GOMP_SPINCOUNT=300000`` brings back libgomp's default spinning
(``OMP_WAIT_POLICY=ACTIVE`` spins without limit instead).

And asks MKL for results that are the same in every process (``MKL_CBWR=AUTO``, unless the environment sets it):
by default MKL may take another code path in another process of the same run, so that a fresh process's matrix
products differ by a rounding, and a resumed run would not end bit for bit where an uninterrupted one does
(docs/training.md, "Exact resume"). AUTO keeps the CPU's fastest code path.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported
os.environ.setdefault("MKL_CBWR", "AUTO")  # reproducible MKL results from process to process

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
