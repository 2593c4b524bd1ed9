"""The work-dir rule: a new run never writes over a run already there; --exist-ok moves it to previous-N."""

from __future__ import annotations

import json

import pytest
import torch

from detkit.engine import PreflightError, Trainer, WorkDirInUse
from detkit.engine.workdir import LOCK_NAME, holds_run, lock_work_dir, move_previous_run


def _snapshot(folder):
    """The run's files (the work dir's lock file is not the run's: it stays where it is)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != LOCK_NAME
    }


@pytest.fixture
def first_run(toy, tmp_path):
    work = tmp_path / "w"
    Trainer(toy.toy_config(max_epochs=1), work_dir=work, device="cpu").fit()
    return work


def test_second_training_without_resume_is_refused_and_touches_nothing(toy, first_run):
    before = _snapshot(first_run)
    with pytest.raises(WorkDirInUse) as e:
        Trainer(toy.toy_config(max_epochs=1), work_dir=first_run, device="cpu")
    msg = str(e.value)
    assert str(first_run) in msg and "--resume" in msg and "--work-dir" in msg and "--exist-ok" in msg
    assert _snapshot(first_run) == before  # best.pth, log.txt, metrics.jsonl: byte for byte


def test_exist_ok_moves_the_previous_run_and_keeps_its_best(toy, first_run, caplog):
    best = (first_run / "best.pth").read_bytes()
    before = _snapshot(first_run)
    with caplog.at_level("INFO", logger="detkit"):
        Trainer(toy.toy_config(max_epochs=1, log_interval=1), work_dir=first_run, device="cpu", exist_ok=True).fit()
    prev = first_run / "previous-1"
    assert _snapshot(prev) == before  # every file of the old run, unchanged, nothing deleted
    assert (prev / "best.pth").read_bytes() == best
    assert "previous run" in caplog.text and str(prev) in caplog.text
    new_hist = (first_run / "history.json").read_text()
    assert new_hist != before["history.json"].decode()  # a fresh run, log_interval 1
    Trainer(toy.toy_config(max_epochs=1), work_dir=first_run, device="cpu", exist_ok=True)
    assert (first_run / "previous-2" / "best.pth").is_file() and (prev / "best.pth").read_bytes() == best


def test_resume_is_allowed_and_a_missing_latest_is_named(toy, first_run, tmp_path):
    cfg = toy.toy_config(max_epochs=2)
    Trainer(cfg, work_dir=first_run, device="cpu", resume=True).fit()
    assert torch.load(first_run / "latest.pth", weights_only=True)["meta"]["epoch"] == 2
    with pytest.raises(FileNotFoundError, match="nothing to resume.*latest.pth"):
        Trainer(cfg, work_dir=tmp_path / "empty", device="cpu", resume=True)
    assert not (tmp_path / "empty").exists()


def test_a_dir_without_run_files_is_used_and_a_file_is_refused(toy, tmp_path):
    work = tmp_path / "notes"
    work.mkdir()
    (work / "README.txt").write_text("mine")
    assert not holds_run(work) and move_previous_run(work) is None
    Trainer(toy.toy_config(max_epochs=1), work_dir=work, device="cpu").fit()
    assert (work / "README.txt").read_text() == "mine" and (work / "best.pth").is_file()
    (tmp_path / "file").write_text("x")
    with pytest.raises(PreflightError, match="is a file"):
        Trainer(toy.toy_config(), work_dir=tmp_path / "file", device="cpu")
    with pytest.raises(PreflightError, match="cannot be written"):
        Trainer(toy.toy_config(), work_dir=tmp_path / "file" / "sub", device="cpu")


@pytest.mark.parametrize("name", ["config.yaml", "losses.png", "history.json", "log.txt"])
def test_files_a_run_would_write_over_are_refused_then_moved_with_exist_ok(toy, tmp_path, name):
    work = tmp_path / "mine"
    work.mkdir()
    (work / name).write_text("# the user's own file\n")  # no checkpoint, no metrics.jsonl: not a run
    with pytest.raises(WorkDirInUse) as e:
        Trainer(toy.toy_config(max_epochs=1), work_dir=work, device="cpu")
    msg = str(e.value)
    assert name in msg and "--exist-ok" in msg and "--work-dir" in msg and "--resume" not in msg
    assert [p.name for p in work.iterdir()] == [name]  # nothing written, nothing moved
    Trainer(toy.toy_config(max_epochs=1), work_dir=work, device="cpu", exist_ok=True).fit()
    assert (work / "previous-1" / name).read_text() == "# the user's own file\n" and (work / "best.pth").is_file()


def test_a_resume_with_another_config_keeps_the_earlier_config_yaml(toy, first_run):
    before = (first_run / "config.yaml").read_text()
    Trainer(toy.toy_config(max_epochs=2), work_dir=first_run, device="cpu", resume=True).fit()
    kept = first_run / "config.before-resume-1.yaml"
    assert kept.read_text() == before and "max_epochs: 2" in (first_run / "config.yaml").read_text()
    Trainer(toy.toy_config(max_epochs=2), work_dir=first_run, device="cpu", resume=True).fit()  # same config
    assert not (first_run / "config.before-resume-2.yaml").exists()
    Trainer(toy.toy_config(max_epochs=1), work_dir=first_run, device="cpu", exist_ok=True)  # a new run
    assert (first_run / "previous-1" / kept.name).read_text() == before  # moved with the run's files


def test_one_training_at_a_time_writes_a_work_dir(toy, first_run, tmp_path):
    """A second training on a work dir another process is writing (a resume while the first still runs, the
    workers that outlived a killed torchrun) is refused, naming that process; the lock goes with fit()."""
    import subprocess
    import sys
    import time

    holder = subprocess.Popen(
        [sys.executable, "-c", f"from detkit.engine.workdir import lock_work_dir as l; f = l({str(first_run)!r}); "
         "print('locked', flush=True); import time; time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(
            WorkDirInUse, match=rf"another training \(process {holder.pid}\) is writing .*kill {holder.pid}"
        ):
            Trainer(toy.toy_config(max_epochs=2), work_dir=first_run, device="cpu", resume=True)
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    trainer = Trainer(toy.toy_config(max_epochs=2), work_dir=first_run, device="cpu", resume=True)
    trainer.fit()
    lock_work_dir(first_run).close()  # released by fit(): this process can take it again


def test_the_lock_in_this_process_and_on_file_systems_without_locks(toy, first_run, monkeypatch):
    """A Trainer made and not fitted holds the dir: a second one in this process is told so (not to kill itself);
    a construction that fails after claiming lets go; where flock is not supported, training goes on unguarded."""
    import errno
    import fcntl

    kept = Trainer(toy.toy_config(max_epochs=2), work_dir=first_run, device="cpu", resume=True)
    with pytest.raises(WorkDirInUse, match="a Trainer of this process already holds .*call its fit"):
        Trainer(toy.toy_config(max_epochs=2), work_dir=first_run, device="cpu", resume=True)
    del kept
    lock_work_dir(first_run).close()  # free again

    def unsupported(*_):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", unsupported)
    with pytest.warns(UserWarning, match="does not lock files .*no guard against a second training"):
        assert lock_work_dir(first_run) is None


def test_a_work_dir_inside_the_data_is_refused(tmp_path):
    """The run's files among the images (a classifier's new class folder): refused before anything is written."""
    from detkit.engine.workdir import check_outside_data

    cfg = {"data": {"train": {"type": "MixDataset", "dataset": {"img_dir": str(tmp_path / "imgs" / "train")}}}}
    for bad in (tmp_path / "imgs" / "train", tmp_path / "imgs" / "train" / "run"):
        with pytest.raises(PreflightError, match=r"inside data.train.dataset.img_dir .*outside the data"):
            check_outside_data(bad, cfg)
    check_outside_data(tmp_path / "imgs" / "runs", cfg)  # beside the images: fine
    check_outside_data(tmp_path / "work", {"data": {"val": None}})


@pytest.fixture
def other_run(toy, tmp_path):
    """Another finished run (A), beside the work dir's own (``first_run``, B)."""
    work = tmp_path / "a"
    Trainer(toy.toy_config(max_epochs=1, log_interval=1), work_dir=work, device="cpu").fit()
    return work


def test_resuming_another_runs_checkpoint_over_a_run_is_refused_then_moved_with_exist_ok(toy, first_run, other_run):
    """--resume runs/A/latest.pth --work-dir runs/B, B holding its own run: B's latest.pth would be A's continuation
    and the metrics mixed, B's best.pth left B's. Refused, touching nothing; --exist-ok moves B's run aside."""
    before = _snapshot(first_run)
    cfg = toy.toy_config(max_epochs=2)
    with pytest.raises(WorkDirInUse) as e:
        Trainer(cfg, work_dir=first_run, device="cpu", resume=other_run / "latest.pth")
    msg = str(e.value)
    assert f"work dir {first_run} holds another run" in msg and f"--work-dir {other_run})" in msg, msg
    assert "--exist-ok" in msg and "empty --work-dir" in msg and "\n" not in msg
    assert _snapshot(first_run) == before
    Trainer(cfg, work_dir=first_run, device="cpu", resume=other_run / "latest.pth", exist_ok=True).fit()
    assert _snapshot(first_run / "previous-1") == before  # B's run, whole
    meta = torch.load(first_run / "latest.pth", weights_only=True)["meta"]
    assert meta["epoch"] == 2  # A's run went on in B
    rows = (first_run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2]  # A's epoch 1 evaluated anew (as into an empty dir)


def test_resume_of_the_own_run_or_into_a_folder_without_checkpoint_goes_on(toy, first_run, other_run, tmp_path):
    """The documented cases stay: the work dir's own checkpoint (with a path too), another run's checkpoint into
    an empty folder or one where that resume stopped before its first checkpoint; --exist-ok with the own run's
    resume is refused (one continues the run, the other moves it)."""
    cfg = toy.toy_config(max_epochs=2)
    Trainer(cfg, work_dir=first_run, device="cpu", resume=first_run / "latest.pth").fit()
    for own in (True, first_run / "latest.pth"):
        with pytest.raises(PreflightError, match="continues the run in .* and --exist-ok .*give one of them"):
            Trainer(cfg, work_dir=first_run, device="cpu", resume=own, exist_ok=True)
    stopped = tmp_path / "stopped"  # a --resume A/latest.pth that stopped before its first checkpoint
    stopped.mkdir()
    for name in ("config.yaml", "log.txt", "metrics.jsonl"):
        (stopped / name).write_text("")
    Trainer(cfg, work_dir=stopped, device="cpu", resume=other_run / "latest.pth").fit()
    Trainer(cfg, work_dir=tmp_path / "new", device="cpu", resume=other_run / "latest.pth").fit()
    for work in (stopped, tmp_path / "new"):
        assert torch.load(work / "latest.pth", weights_only=True)["meta"]["epoch"] == 2
