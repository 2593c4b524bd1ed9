"""Benchmark detkit: data loading (``--task data``), inference and training steps (``infer``/``train``) (the logic is in detkit/cli/benchmark.py; the same command is `detkit benchmark`)."""

import sys

import _bootstrap  # noqa: F401  (puts the checkout on sys.path, OMP_WAIT_POLICY=PASSIVE)

from detkit.cli.benchmark import *  # noqa: F401,F403,E402  (scripts and tests use the tool's functions)
from detkit.cli.benchmark import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
