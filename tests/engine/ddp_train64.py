"""tools/train.py (through toy_train.py, real builders) with float64 as torch's default dtype.

The distributed-equivalence tests (test_ddp_real.py) train in float64 so that float rounding, which
AdamW amplifies for weights whose gradient is a sum of cancelling terms, stays far below their tolerance.
"""

import runpy
import sys
from pathlib import Path

import torch

torch.set_default_dtype(torch.float64)
sys.argv[0] = str(Path(__file__).resolve().parent / "toy_train.py")
runpy.run_path(sys.argv[0], run_name="__main__")
