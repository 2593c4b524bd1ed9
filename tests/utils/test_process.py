"""detkit.utils.process: the defaults every tool sets, and the user's own settings winning."""

import os

from detkit.utils.process import PROCESS_DEFAULTS, set_process_defaults


def test_defaults_fill_in_and_the_environment_wins(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    set_process_defaults()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE" and os.environ["MKL_CBWR"] == "COMPATIBLE"
    assert PROCESS_DEFAULTS == {"OMP_WAIT_POLICY": "PASSIVE", "MKL_CBWR": "AUTO"}
