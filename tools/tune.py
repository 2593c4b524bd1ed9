"""Search hyperparameters with Optuna (the logic is in detkit/cli/tune.py; the same command is `detkit tune`)."""

import sys

import _bootstrap  # noqa: F401  (puts the checkout on sys.path, OMP_WAIT_POLICY=PASSIVE)

from detkit.cli.tune import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
