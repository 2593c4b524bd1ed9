"""Run a detector or segmentor on images, folders, globs and videos; write drawings and predictions (the logic is in detkit/cli/infer.py; the same command is `detkit infer`)."""

import sys

import _bootstrap  # noqa: F401  (puts the checkout on sys.path, OMP_WAIT_POLICY=PASSIVE)

from detkit.cli.infer import *  # noqa: F401,F403,E402  (scripts and tests use the tool's functions)
from detkit.cli.infer import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
