"""Multi-object tracking on videos and frame folders (the logic is in detkit/cli/track.py; the same command is `detkit track`)."""

import sys

import _bootstrap  # noqa: F401  (puts the checkout on sys.path, OMP_WAIT_POLICY=PASSIVE)

from detkit.cli.track import *  # noqa: F401,F403,E402  (scripts and tests use the tool's functions)
from detkit.cli.track import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
