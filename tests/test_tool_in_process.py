"""The tests' in-process tool runner (tests/conftest.py) answers as a fresh process would, and cleans up after."""

import logging
import os
import sys

import torch


def test_an_uncaught_error_is_a_traceback_and_status_1(tool_in_process, monkeypatch, tmp_path):
    import detkit.cli.plot_logs as tool

    def boom(argv=None):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(tool, "main", boom)
    r = tool_in_process("plot_logs", [], tmp_path)
    assert r.returncode == 1 and "Traceback" in r.stderr and "RuntimeError: kaboom" in r.stderr


def test_exit_status_output_and_process_state(tool_in_process, tmp_path):
    here, argv, env, threads = os.getcwd(), sys.argv[:], dict(os.environ), torch.get_num_threads()
    handlers = logging.getLogger("detkit").handlers[:]
    r = tool_in_process("make_shapes", ["--help"], tmp_path)
    assert r.returncode == 0 and "usage" in r.stdout.lower() and r.stderr == ""
    r = tool_in_process("detkit", ["evaluate", "x.yaml"], tmp_path)  # main sets OMP_* defaults and sys.argv[0]
    assert r.returncode == 2 and "unknown command 'evaluate'" in r.stderr
    assert (os.getcwd(), sys.argv, dict(os.environ), torch.get_num_threads()) == (here, argv, env, threads)
    assert logging.getLogger("detkit").handlers == handlers


def test_what_a_run_sets_for_its_process_is_put_back(tool_in_process, monkeypatch, tmp_path):
    """A training run's log.txt handler on detkit.file (propagate off), --deterministic's torch flags."""
    import detkit.cli.plot_logs as tool

    flags = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic)
    known = logging.getLogger("detkit.file")
    state = (known.handlers[:], known.level, known.propagate)

    def run(argv=None):
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        for name in ("detkit.file", "detkit.made_by_the_run"):
            lg = logging.getLogger(name)
            lg.addHandler(logging.StreamHandler(sys.stderr))
            lg.setLevel(logging.INFO)
            lg.propagate = False
        return 0

    monkeypatch.setattr(tool, "main", run)
    assert tool_in_process("plot_logs", [], tmp_path).returncode == 0
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic) == flags
    assert (known.handlers, known.level, known.propagate) == state
    made = logging.getLogger("detkit.made_by_the_run")
    assert (made.handlers, made.level, made.propagate) == ([], logging.NOTSET, True)
