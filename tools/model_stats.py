"""Parameters per part (backbone, neck, heads) and FLOPs of a config's model at an input size (the logic is in detkit/cli/model_stats.py; the same command is `detkit model-stats`)."""

import sys

import _bootstrap  # noqa: F401  (puts the checkout on sys.path, OMP_WAIT_POLICY=PASSIVE)

from detkit.cli.model_stats import *  # noqa: F401,F403,E402  (scripts and tests use the tool's functions)
from detkit.cli.model_stats import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
