"""Under torchrun every process finds the same mistake of input: the message shows once (the first process's),
every process exits 2; warnings of the other processes' loggers say which process they come from."""

from __future__ import annotations

import logging

import pytest


@pytest.mark.parametrize("rank, shown", [(None, True), ("0", True), ("1", False)])
def test_a_mistake_is_told_by_the_first_process_only(tool_in_process, monkeypatch, rank, shown):
    if rank is not None:  # (a second machine's first process, RANK 4 LOCAL_RANK 0, tells its own mistakes)
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("LOCAL_RANK", rank)
    for args in (["yolo_n_shapes", "--set", "train.max_itres=3"], ["yolo_n_shapes", "--no-such-flag"]):
        run = tool_in_process("train", args)
        assert run.returncode == 2
        assert (run.stderr.strip() != "") == shown, run.stderr
        if shown:
            assert len(run.stderr.strip().splitlines()) == 1 and "error:" in run.stderr


def test_slurm_tasks_count_as_processes(monkeypatch):
    from detkit.cli.errors import other_process

    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_NTASKS", "1")  # one task (an interactive srun): the only process
    assert not other_process()
    monkeypatch.setenv("SLURM_NTASKS", "2")
    assert other_process()
    monkeypatch.setenv("SLURM_LOCALID", "0")  # the first task of another machine: tells its own mistakes
    assert not other_process()
    monkeypatch.setenv("RANK", "5")
    monkeypatch.setenv("LOCAL_RANK", "0")  # torchrun: the first process of the second machine
    assert not other_process()


def test_other_processes_mark_their_warnings(monkeypatch, capsys):
    from detkit.engine.logger import setup_logger

    monkeypatch.setenv("RANK", "1")
    logger = setup_logger(None, main_process=False)
    try:
        logger.info("not shown")
        logger.warning("a warning of this process")
        out = capsys.readouterr().out
        assert "not shown" not in out and "[rank 1] " in out and "a warning of this process" in out
    finally:
        for h in list(logger.handlers):
            logger.removeHandler(h)
        logger.setLevel(logging.NOTSET)


@pytest.mark.parametrize(
    "flags, habit, n",
    [
        (["--launcher", "pytorch"], "MMDetection's tools/train.py option", "N"),
        (["--num-gpus", "2"], "Detectron2's train_net.py option", "2"),
        (["--nproc_per_node=4"], "torchrun's option", "4"),
    ],
)
def test_other_toolkits_launch_flags_name_torchrun(tool_in_process, flags, habit, n):
    run = tool_in_process("train", ["yolo_n_shapes", *flags])
    assert run.returncode == 2 and habit in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert f"torchrun --nproc-per-node {n} tools/train.py CONFIG" in run.stderr


def test_torch_distributed_launch_local_rank_is_accepted():
    from detkit.cli.train import parse_args

    assert parse_args(["yolo_n_shapes", "--local-rank=1"]).config == "yolo_n_shapes"
    assert parse_args(["yolo_n_shapes", "--local_rank", "0"]).local_rank == 0
