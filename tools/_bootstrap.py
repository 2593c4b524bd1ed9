"""Put the checkout on sys.path so `python tools/x.py` works without installing detkit.

Also makes idle OpenMP threads sleep instead of spin (``OMP_WAIT_POLICY=PASSIVE``, unless the environment
sets it): on a CPU shared with data-loader workers, other processes or DDP ranks, spinning threads took
the cores from the work and ran training several times slower (docs/training.md). On a machine that runs
nothing else this costs ~5% of a step; ``GOMP_SPINCOUNT=300000`` brings back libgomp's default spinning
(``OMP_WAIT_POLICY=ACTIVE`` spins without limit instead).
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
