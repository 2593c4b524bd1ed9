"""A reader that closed stdout (``detkit train ... | head -1``): the screen's log lines stop quietly (no "Logging
error" traceback per record), the run goes on and log.txt keeps every line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_screen_log_stops_quietly_and_log_txt_keeps_every_line(tmp_path):
    code = (
        "import sys; from detkit.engine.logger import setup_logger; lg = setup_logger(sys.argv[1]); "
        "[lg.info('line %d', i) for i in range(3)]; print('went on', file=sys.stderr)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)  # fmt: skip
    proc.stdout.close()  # the reader gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and err.strip() == "went on", err
    assert [f"line {i}" in (tmp_path / "log.txt").read_text() for i in range(3)] == [True] * 3
