"""Export a trained model to ONNX, optionally verified against PyTorch with onnxruntime (the logic is in detkit/cli/export.py; the same command is `detkit export`)."""

import sys

import _bootstrap  # noqa: F401  (puts the checkout on sys.path, OMP_WAIT_POLICY=PASSIVE)

from detkit.cli.export import *  # noqa: F401,F403,E402  (scripts and tests use the tool's functions)
from detkit.cli.export import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
