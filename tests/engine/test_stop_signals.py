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
