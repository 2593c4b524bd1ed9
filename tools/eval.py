"""Evaluate a checkpoint on the config's data.val and print the metrics (and per-class table) (the logic is in detkit/cli/eval.py; the same command is `detkit eval`)."""

import sys

import _bootstrap  # noqa: F401  (puts the checkout on sys.path, OMP_WAIT_POLICY=PASSIVE)

from detkit.cli.eval import *  # noqa: F401,F403,E402  (scripts and tests use the tool's functions)
from detkit.cli.eval import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
