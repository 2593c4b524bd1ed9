"""train.max_iters: an iteration-based run (issue 20): it stops mid-epoch after exactly max_iters iterations,
evaluates and checkpoints at iteration intervals, resumes exactly, and its LR schedule spans max_iters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from detkit.config import ConfigError, load_config
from detkit.engine import Trainer
from detkit.engine.run_length import RunLength

HERE = Path(__file__).resolve().parent


def _rows(work_dir):
    return [json.loads(line) for line in (work_dir / "metrics.jsonl").read_text().splitlines()]


def _cfg(toy, **train):
    cfg = toy.toy_config(**train)
    cfg["data"]["train"]["num_samples"] = 4  # batch 2: 2 iterations per epoch
    return cfg


def test_max_iters_stops_mid_epoch_and_evaluates_at_iterations(toy, tmp_path):
    cfg = _cfg(toy, max_epochs=50, max_iters=5, eval_interval=2, checkpoint_interval=2, log_interval=1)
    tr = Trainer(cfg, work_dir=tmp_path, device="cpu")
    assert tr.schedule.max_iters == 5  # the LR schedule spans max_iters, not max_epochs x iters_per_epoch
    tr.fit()
    meta = torch.load(tmp_path / "latest.pth", weights_only=True)["meta"]
    assert (meta["iter"], meta["epoch"], meta["iter_in_epoch"]) == (5, 2, 1)  # stopped in the third epoch
    rows = _rows(tmp_path)
    assert [(r["iter"], r["epoch"]) for r in rows] == [(2, 1.0), (4, 2.0), (5, 2.5)]  # every 2 and the last
    assert sorted(p.name for p in tmp_path.glob("*_*.pth")) == ["iter_2.pth", "iter_4.pth"]
    assert torch.load(tmp_path / "iter_4.pth", weights_only=True)["meta"]["iter"] == 4
    log = (tmp_path / "log.txt").read_text()
    assert "for 5 iterations (train.max_iters; train.max_epochs 50 is not used), 2 per pass" in log
    assert "iter 2/5  loss" in log and "iter 5/5  loss" in log and "epoch 3/50" not in log
    assert "iter 3/5 (epoch 2/3)" in log  # the progress line counts the run's iterations
    assert "evaluation at iteration 4 (AP" in log and "training done: iteration 5 in" in log
    best = torch.load(tmp_path / "best.pth", weights_only=True)["meta"]["best"]
    assert best["iter"] in (2, 4, 5) and best["epoch"] == best["iter"] / 2


def test_eval_interval_unset_evaluates_every_tenth(toy, tmp_path):
    cfg = _cfg(toy, max_iters=20)  # eval_interval left at its default (null)
    Trainer(cfg, work_dir=tmp_path, device="cpu").fit()
    assert [r["iter"] for r in _rows(tmp_path)] == [2 * k for k in range(1, 11)]
    assert "every 2 iterations (max_iters // 10 (train.eval_interval unset))" in (tmp_path / "log.txt").read_text()
    cfg = _cfg(toy, max_epochs=2)  # an epoch-based run still evaluates every epoch by default
    Trainer(cfg, work_dir=tmp_path / "e", device="cpu").fit()
    assert [r["epoch"] for r in _rows(tmp_path / "e")] == [1, 2]


def test_resume_extends_and_nothing_to_do(toy, tmp_path, detkit_log):
    Trainer(_cfg(toy, max_iters=3, eval_interval=2), work_dir=tmp_path, device="cpu").fit()
    log = (tmp_path / "log.txt").read_text()
    Trainer(_cfg(toy, max_iters=3, eval_interval=2), work_dir=tmp_path, device="cpu", resume=True).fit()
    assert "nothing to do: the checkpoint is at iteration 3 and train.max_iters is 3" in detkit_log[-1]
    assert (tmp_path / "log.txt").read_text() == log  # nothing ran: nothing written (log.txt neither)
    tr = Trainer(_cfg(toy, max_iters=7, eval_interval=2), work_dir=tmp_path, device="cpu", resume=True)
    tr.fit()
    assert tr.iter == 7 and [r["iter"] for r in _rows(tmp_path)] == [2, 3, 4, 6, 7]


def test_uninterrupted_equals_stopped_and_resumed(toy, tmp_path):
    """Stop at iteration 3 (an evaluation there), resume to 7 with accumulation: the same weights as one run to 7."""
    kw = dict(max_iters=7, eval_interval=3, accumulate=2, ema={"decay": 0.9, "tau": 2})
    full, part = _cfg(toy, **kw), _cfg(toy, **{**kw, "max_iters": 3})
    for cfg in (full, part):  # the same LR up to iteration 3 (the warm-up cap would differ)
        cfg["scheduler"].update(warmup_iters=1, warmup_max_share=None)
    Trainer(full, work_dir=tmp_path / "ref", device="cpu").fit()
    Trainer(part, work_dir=tmp_path / "run", device="cpu").fit()
    Trainer(full, work_dir=tmp_path / "run", device="cpu", resume=True).fit()
    a = torch.load(tmp_path / "ref" / "latest.pth", weights_only=True)
    b = torch.load(tmp_path / "run" / "latest.pth", weights_only=True)
    assert a["meta"]["iter"] == b["meta"]["iter"] == 7
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(a["model_raw"][k], b["model_raw"][k]) for k in a["model_raw"])


def test_patience_counts_evaluations_within_an_epoch(toy, tmp_path):
    cfg = _cfg(toy, max_iters=20, eval_interval=1, patience=2)
    cfg["optimizer"]["lr"] = 1e-12  # the metric never changes: the first evaluation stays the best
    tr = Trainer(cfg, work_dir=tmp_path, device="cpu")
    tr.fit()
    assert tr.iter == 3 and [r["iter"] for r in _rows(tmp_path)] == [1, 2, 3]
    assert tr.stop_reason.endswith("at iteration 1)")


def test_lr_schedule_spans_max_iters_with_capped_warmup(toy, tmp_path):
    cfg = _cfg(toy, max_epochs=12, max_iters=40)
    cfg["scheduler"].update(type="multistep", milestones=[8, 30], warmup_iters=500, warmup_max_share=0.1)
    tr = Trainer(cfg, work_dir=tmp_path, device="cpu")
    s = tr.schedule
    assert (s.max_iters, s.warmup_iters, s.milestone_iters) == (40, 4, [16, 60])  # warm-up: 10% of max_iters
    line, late = tr.length.schedule_note(s)
    assert "LR schedule: multistep over 40 iterations, warm-up 4, LR x0.1 at iterations [16, 60]" in line
    assert late and "never reached" in line


@pytest.mark.parametrize("value", [0, 1.5, "ten"])
def test_max_iters_config_errors(value, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"train": {"max_iters": value}}))
    with pytest.raises(ConfigError, match=r"train\.max_iters must be an integer >= 1"):
        load_config(path)


def test_run_length_points():
    length = RunLength(iters_per_epoch=4, max_epochs=12, max_iters=10, eval_interval=None, checkpoint_interval=3)
    assert length.every == 1 and length.epochs == 3 and length.total_iters == 10
    assert [i for i in range(1, 11) if length.checkpoint_name(0, i)] == [3, 6, 9]
    assert length.checkpoint_name(0, 9) == "iter_9.pth" and length.epoch_of(2, 10) == 2.5
    epochs = RunLength(iters_per_epoch=4, max_epochs=5, eval_interval=2, checkpoint_interval=2)
    assert [e for e in range(1, 6) if epochs.eval_due(e, 0)] == [2, 4, 5] and not epochs.is_point(8)
    assert epochs.checkpoint_name(4, 16) == "epoch_4.pth" and epochs.total_iters == 20


def test_sigkill_then_resume_is_exact_in_iteration_mode(shapes, tmp_path):
    """The real parts (Faster R-CNN R18, shapes): 6 iterations over 4 images of batch 1 (1.5 epochs), killed at
    iteration 5 in the second epoch, resumed: the weights equal an uninterrupted run's."""
    from test_real_parts import kill_and_resume, small_config

    cfg = small_config(tmp_path, shapes, max_epochs=12, max_iters=6, checkpoint_iters=1)
    a, b, meta = kill_and_resume(cfg, tmp_path, 5)
    assert (meta["epoch"], meta["iter_in_epoch"], meta["iter"]) == (1, 1, 5)
    assert a["meta"]["iter"] == b["meta"]["iter"] == 6 and a["meta"]["epoch"] == 1
    assert len(a["model"]) > 50 and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_sigterm_in_the_last_iteration_then_resume_evaluates_it(tmp_path):
    """SIGTERM during the last iteration (an epoch's last batch): latest.pth holds it unevaluated; the resume
    evaluates it, rolls the epoch over and ends."""
    from test_resume import CONFIG, _run_tool

    cfg = {**CONFIG, "train": {**CONFIG["train"], "max_iters": 4, "eval_interval": 2, "checkpoint_iters": None}}
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    args = [path, "--work-dir", tmp_path / "w", "--device", "cpu"]
    stopped = _run_tool(args, {"DETKIT_TOY_SIGNAL_AT": "3:SIGTERM"})  # sent as iteration 4 starts
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    meta = torch.load(tmp_path / "w" / "latest.pth", weights_only=True)["meta"]
    assert (meta["iter"], meta["epoch"], meta["iter_in_epoch"]) == (4, 0, 4)
    assert [r["iter"] for r in _rows(tmp_path / "w")] == [2]
    done = _run_tool([*args, "--resume"])
    assert done.returncode == 0, done.stderr[-2000:]
    meta = torch.load(tmp_path / "w" / "latest.pth", weights_only=True)["meta"]
    assert (meta["iter"], meta["epoch"], meta["iter_in_epoch"]) == (4, 1, 0)
    assert [r["iter"] for r in _rows(tmp_path / "w")] == [2, 4] and "training done: iteration 4" in done.stdout


def test_torchrun_two_processes_stop_mid_epoch_like_one(toy, tmp_path):
    """DDP: 2 processes stop at the same iteration mid-epoch, evaluate mid-epoch together, and match 1 process."""
    from test_ddp import CONFIG, ROOT, _free_port

    cfg = {**CONFIG, "train": {**CONFIG["train"], "max_iters": 6, "eval_interval": 3}}  # 4 per epoch: 1.5 epochs
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = ["-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1"]
    cmd = [sys.executable, *run, "--master-port", str(_free_port()), str(HERE / "toy_train.py"), str(path)]
    proc = subprocess.run(
        [*cmd, "--work-dir", str(tmp_path / "ddp"), "--device", "cpu"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    Trainer({**cfg, "data": {**cfg["data"], "batch_size": 4}}, work_dir=tmp_path / "one", device="cpu").fit()
    a = torch.load(tmp_path / "ddp" / "latest.pth", weights_only=True)
    b = torch.load(tmp_path / "one" / "latest.pth", weights_only=True)
    assert a["meta"]["iter"] == b["meta"]["iter"] == 6 and (a["meta"]["epoch"], a["meta"]["iter_in_epoch"]) == (1, 2)
    for k, v in b["model"].items():
        assert torch.allclose(a["model"][k], v, atol=1e-5, rtol=0), k
    assert [r["iter"] for r in _rows(tmp_path / "ddp")] == [r["iter"] for r in _rows(tmp_path / "one")] == [3, 6]


def test_close_mosaic_gets_the_passes_over_the_data(toy, tmp_path):
    """MixDataset.set_max_epochs (close_mosaic) hears of ceil(max_iters / iters_per_epoch) epochs."""
    tr = Trainer(_cfg(toy, max_epochs=50, max_iters=5), work_dir=tmp_path, device="cpu")
    told = []
    tr.train_set.set_max_epochs = told.append
    tr.fit()
    assert told == [3]  # 5 iterations of 2 per epoch: the third epoch is the last (cut short)
