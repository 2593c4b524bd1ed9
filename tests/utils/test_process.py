"""detkit.utils.process: the defaults every tool sets, and the user's own settings winning."""

import os

from detkit.utils.process import PROCESS_DEFAULTS, set_process_defaults


def test_defaults_fill_in_and_the_environment_wins(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    set_process_defaults()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE" and os.environ["MKL_CBWR"] == "COMPATIBLE"
    assert PROCESS_DEFAULTS == {"OMP_WAIT_POLICY": "PASSIVE", "MKL_CBWR": "AUTO"}


def test_ctrl_c_is_one_line_and_other_errors_keep_their_traceback(monkeypatch, capsys):
    import sys

    from detkit.utils.process import quiet_interrupts

    seen = []
    monkeypatch.setattr(sys, "excepthook", lambda *a: seen.append(a[0]))
    monkeypatch.setattr(sys, "argv", ["tools/infer.py"])
    quiet_interrupts()
    sys.excepthook(KeyboardInterrupt, KeyboardInterrupt(), None)
    assert capsys.readouterr().err.strip() == "infer: stopped by Ctrl-C" and not seen
    sys.excepthook(ValueError, ValueError("x"), None)
    assert seen == [ValueError]  # handed to the previous hook
