"""Draw a config's dataset ground truth (boxes, masks, semantic maps), raw or after its pipeline (the logic is in detkit/cli/browse_dataset.py; the same command is `detkit browse`)."""

import sys

import _bootstrap  # noqa: F401  (puts the checkout on sys.path, OMP_WAIT_POLICY=PASSIVE)

from detkit.cli.browse_dataset import *  # noqa: F401,F403,E402  (scripts and tests use the tool's functions)
from detkit.cli.browse_dataset import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
