"""Train a detector on one process, or on many through torchrun (the logic is in detkit/cli/train.py; the same command is `detkit train`)."""

import sys

import _bootstrap  # noqa: F401  (puts the checkout on sys.path, OMP_WAIT_POLICY=PASSIVE)

from detkit.cli.train import *  # noqa: F401,F403,E402  (scripts and tests use the tool's functions)
from detkit.cli.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
