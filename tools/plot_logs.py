"""Plot metric and loss curves of one or several work directories (metrics.jsonl, history.json) to compare runs (the logic is in detkit/cli/plot_logs.py; the same command is `detkit plot-logs`)."""

import sys

import _bootstrap  # noqa: F401  (puts the checkout on sys.path, OMP_WAIT_POLICY=PASSIVE)

from detkit.cli.plot_logs import *  # noqa: F401,F403,E402  (scripts and tests use the tool's functions)
from detkit.cli.plot_logs import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
