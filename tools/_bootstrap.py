"""Put the checkout on sys.path so `python tools/x.py` works without installing detkit, and set the process
defaults every tool starts with before torch is imported (``detkit.utils.process``: ``OMP_WAIT_POLICY=PASSIVE``,
``MKL_CBWR=AUTO``, unless the environment sets them).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from detkit.utils.process import quiet_interrupts, set_process_defaults  # noqa: E402  (imports no torch)

set_process_defaults()
quiet_interrupts()
