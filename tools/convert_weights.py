"""Convert torchvision or Ultralytics (YOLOv8) weights to a detkit checkpoint (the logic is in detkit/cli/convert_weights.py; the same command is `detkit convert-weights`)."""

import sys

import _bootstrap  # noqa: F401  (puts the checkout on sys.path, OMP_WAIT_POLICY=PASSIVE)

from detkit.cli.convert_weights import *  # noqa: F401,F403,E402  (scripts and tests use the tool's functions)
from detkit.cli.convert_weights import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
