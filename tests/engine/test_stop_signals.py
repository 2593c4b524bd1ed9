"""dist.StopSignals: the first SIGINT asks for a stop; only the process that is verbose (the main one) says so."""

import os
import signal

import pytest

from detkit.engine.dist import StopSignals


@pytest.mark.parametrize("verbose", [True, False])
def test_only_a_verbose_process_says_it_received_the_signal(verbose, capsys):
    with StopSignals(verbose=verbose) as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested and stop.signame == "SIGINT"
    said = "SIGINT received: finishing the current step" in capsys.readouterr().err
    assert said == verbose


def test_failure_message_of_another_rank_points_at_its_own_traceback(tmp_path, capsys):
    """Only rank 0 writes log.txt: another rank's message must not send the user there."""
    from types import SimpleNamespace

    from detkit.cli.train import _failed

    trainer = SimpleNamespace(main=False, rank=1, epoch=0, iter=3, work_dir=tmp_path)
    try:
        raise RuntimeError("boom")
    except RuntimeError as e:
        message = _failed(trainer, e)
    assert "process 1's traceback is above (log.txt is the main process's)" in message
    assert "RuntimeError: boom" in capsys.readouterr().err


def test_a_lost_peer_is_named_as_another_process_stopping(tmp_path):
    """gloo's 'Connection reset by peer' when another rank was killed: the message says what happened."""
    from types import SimpleNamespace

    from detkit.cli.train import _failed

    trainer = SimpleNamespace(main=True, rank=0, world=2, epoch=0, iter=16, work_dir=tmp_path)
    error = RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection reset by peer")
    message = _failed(trainer, error)
    assert "another process of this run stopped (killed or crashed; its own message says why)" in message
    alone = _failed(SimpleNamespace(**{**vars(trainer), "world": 1}), RuntimeError("Connection reset by peer"))
    assert "another process" not in alone


class _SignalledDataset:
    """Each item sends SIGINT to the process that reads it (a DataLoader worker): a Ctrl-C reaching a worker."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> int:
        if i == 0:
            os.kill(os.getpid(), signal.SIGINT)
        return i


def test_a_forked_worker_inherits_the_handler_silently_and_keeps_serving(capfd):
    """A DataLoader worker forked while the handler is active neither prints nor logs the signal; only the
    process that installed the handler says it (once, on stderr and to its log)."""
    from torch.utils.data import DataLoader

    logged: list[str] = []
    with StopSignals(verbose=True, log=logged.append) as stop:
        loader = DataLoader(_SignalledDataset(), batch_size=None, num_workers=1)
        assert list(loader) == [0, 1, 2, 3]  # the worker took its SIGINT and went on
        assert not stop.requested and "received" not in capfd.readouterr().err and logged == []
        os.kill(os.getpid(), signal.SIGINT)
    err = capfd.readouterr().err
    assert err.count("SIGINT received") == 1 and len(logged) == 1 and logged[0] in err


def test_the_second_signal_says_what_stops(capsys):
    with StopSignals(verbose=True) as stop:
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt, match="^a second SIGTERM$"):
            os.kill(os.getpid(), signal.SIGTERM)
    assert stop.signame == "SIGINT" and capsys.readouterr().err.count("received") == 1


def _shapes_config(tmp_path):
    import yaml

    from detkit.data.synthetic import make_shapes

    make_shapes(tmp_path / "shapes", num_train=8, num_val=0, size=(64, 64), empty_fraction=0.0, seed=1)
    cfg = {
        "model": {"type": "ToyDetector", "num_classes": None},
        "data": {
            "batch_size": 2,
            "num_workers": 2,
            "train": {
                "type": "CocoDataset",
                "ann_file": str(tmp_path / "shapes" / "train.json"),
                "img_dir": str(tmp_path / "shapes" / "train"),
            },
        },
        "train": {"max_epochs": 2, "log_interval": 2},
        "optimizer": {"type": "SGD", "lr": 0.05, "momentum": 0.9, "base_batch_size": 2},
        "scheduler": {"type": "multistep", "milestones": [1], "warmup_iters": 2},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_double_ctrl_c_to_the_process_group_is_said_once_and_logged(tmp_path):
    """Two SIGINTs to the whole process group (a terminal's double Ctrl-C) of a run with 2 DataLoader workers: one
    'SIGINT received', one 'stopped immediately', and log.txt says both as the console does."""
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    env = {
        **os.environ,
        "PYTHONPATH": str(here.parents[1]),
        "DETKIT_TOY_REAL": "1",
        "DETKIT_TOY_SIGNAL_AT": "3:SIGINT",
        "DETKIT_TOY_SIGNAL_TIMES": "2",
        "DETKIT_TOY_SIGNAL_GROUP": "1",
    }
    work = tmp_path / "w"
    args = [sys.executable, str(here / "toy_train.py"), str(_shapes_config(tmp_path)), "--work-dir", str(work)]
    run = subprocess.run(
        [*args, "--device", "cpu"], env=env, capture_output=True, text=True, timeout=300, start_new_session=True
    )
    assert run.returncode == 130, run.stderr[-2000:]
    console = run.stdout + run.stderr
    assert console.count("SIGINT received") == 1, console[-2000:]
    said = next(line for line in run.stderr.splitlines() if "stopped immediately" in line)
    log = (work / "log.txt").read_text()
    assert log.count("SIGINT received: finishing the current step") == 1, log[-2000:]
    logged = next(line for line in log.splitlines() if "stopped immediately" in line)
    assert " WARNING stopped immediately (a second SIGINT). " in logged
    assert logged.split("). ", 1)[1] == said.split("stopped immediately. ", 1)[1]  # the console's sentence
