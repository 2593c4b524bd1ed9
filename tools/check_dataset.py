"""Check a COCO-format dataset: list every problem and summarise it; never modifies the inputs (the logic is in detkit/cli/check_dataset.py; the same command is `detkit check`)."""

import sys

import _bootstrap  # noqa: F401  (puts the checkout on sys.path, OMP_WAIT_POLICY=PASSIVE)

from detkit.cli.check_dataset import *  # noqa: F401,F403,E402  (scripts and tests use the tool's functions)
from detkit.cli.check_dataset import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
