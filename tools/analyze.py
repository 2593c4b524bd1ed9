"""Analyse COCO-format predictions against a ground truth: per-class AP, PR curves, confusion matrix, (the logic is in detkit/cli/analyze.py; the same command is `detkit analyze`)."""

import sys

import _bootstrap  # noqa: F401  (puts the checkout on sys.path, OMP_WAIT_POLICY=PASSIVE)

from detkit.cli.analyze import *  # noqa: F401,F403,E402  (scripts and tests use the tool's functions)
from detkit.cli.analyze import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
