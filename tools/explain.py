"""Class-activation maps for detections, classes and segments (the logic is in detkit/cli/explain.py; the same command is `detkit explain`)."""

import sys

import _bootstrap  # noqa: F401  (puts the checkout on sys.path, OMP_WAIT_POLICY=PASSIVE)

from detkit.cli.explain import *  # noqa: F401,F403,E402  (scripts and tests use the tool's functions)
from detkit.cli.explain import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
