"""Write the synthetic "shapes" dataset (COCO instances + semantic maps) used by the *_shapes configs (the logic is in detkit/cli/make_shapes.py; the same command is `detkit make-shapes`)."""

import sys

import _bootstrap  # noqa: F401  (puts the checkout on sys.path, OMP_WAIT_POLICY=PASSIVE)

from detkit.cli.make_shapes import *  # noqa: F401,F403,E402  (scripts and tests use the tool's functions)
from detkit.cli.make_shapes import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
