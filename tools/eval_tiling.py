"""Recall of whole-image vs tiled inference on a large synthetic shapes image (docs/inference.md) (the logic is in detkit/cli/eval_tiling.py; the same command is `detkit eval-tiling`)."""

import sys

import _bootstrap  # noqa: F401  (puts the checkout on sys.path, OMP_WAIT_POLICY=PASSIVE)

from detkit.cli.eval_tiling import *  # noqa: F401,F403,E402  (scripts and tests use the tool's functions)
from detkit.cli.eval_tiling import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
