"""tools/_bootstrap.py: the process settings every tool starts with, unless the environment sets them."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHOW = "import _bootstrap, os; print(os.environ['OMP_WAIT_POLICY'], os.environ['MKL_CBWR'])"


def _run(env: dict) -> str:
    out = subprocess.run(
        [sys.executable, "-c", SHOW], cwd=ROOT / "tools", env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_defaults_and_the_users_own_settings():
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "MKL_CBWR")}
    assert _run(base) == "PASSIVE AUTO"  # idle threads sleep; MKL gives the same results in every process
    assert _run({**base, "OMP_WAIT_POLICY": "ACTIVE", "MKL_CBWR": "COMPATIBLE"}) == "ACTIVE COMPATIBLE"
