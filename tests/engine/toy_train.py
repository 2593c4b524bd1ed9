"""Run tools/train.py with the toy parts installed (for subprocess and torchrun tests).

Environment: DETKIT_TOY_REAL=1 keeps the real builders (only the hooks below are added);
DETKIT_TOY_KILL_AT=N sends SIGKILL to this process when global iteration N starts;
DETKIT_TOY_SIGNAL_AT=N:SIG sends SIG (e.g. SIGTERM) to itself when iteration N starts, DETKIT_TOY_SIGNAL_TIMES
times (default 1); with DETKIT_TOY_SIGNAL_GROUP=1 to its process group (its DataLoader workers too: run it in a
session of its own).
"""

import importlib.util
import os
import signal
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))
# as tools/_bootstrap.py does, before torch is imported: without MKL_CBWR=AUTO this process's MKL may take
# another code path than the reference run's, and a "killed" run differed from it by a rounding (flaky
# exact-resume tests: 1 run in 2 on this host)
from detkit.utils.process import set_process_defaults  # noqa: E402  (imports no torch)

set_process_defaults()
import detkit_toy  # noqa: E402

if os.environ.get("DETKIT_TOY_REAL") != "1":  # DETKIT_TOY_REAL=1: the real data, evaluator (hooks only)
    detkit_toy.install()

from detkit.engine.trainer import Trainer  # noqa: E402

_step = Trainer._train_step
KILL_AT = int(os.environ.get("DETKIT_TOY_KILL_AT", "-1"))
SIG_AT, SIG = (os.environ.get("DETKIT_TOY_SIGNAL_AT", "-1:SIGTERM").split(":") + ["SIGTERM"])[:2]
SIG_TIMES = int(os.environ.get("DETKIT_TOY_SIGNAL_TIMES", "1"))  # 2: a double Ctrl-C
SIG_GROUP = os.environ.get("DETKIT_TOY_SIGNAL_GROUP") == "1"  # to the process group, as a terminal sends it


def _hooked_step(self, batch):
    if self.iter == KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)
    if self.iter == int(SIG_AT):
        for _ in range(SIG_TIMES):
            if SIG_GROUP:
                os.killpg(os.getpgid(0), getattr(signal, SIG))
            else:
                os.kill(os.getpid(), getattr(signal, SIG))
    return _step(self, batch)


Trainer._train_step = _hooked_step

spec = importlib.util.spec_from_file_location("detkit_train_tool", HERE.parents[1] / "tools" / "train.py")
tool = importlib.util.module_from_spec(spec)
sys.path.insert(0, str(HERE.parents[1] / "tools"))
spec.loader.exec_module(tool)
sys.exit(tool.main())
