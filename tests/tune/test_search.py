"""The search loop on the toy parts (run_search): complete, pruned and failed trials recorded as such, with their
messages; checkpoints of pruned trials kept; a signal stops the search; re-runs continue the study; a trial whose
process died is marked failed; a study cannot change its metric or direction."""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import sys

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from detkit.tune import Search, StudyError, load_space, run_search
from detkit.tune.trial import TrialRunner


class PruneWhen(optuna.pruners.BasePruner):
    """Prunes the trials whose ``key`` parameter equals ``value``."""

    def __init__(self, key: str, value):
        self.key, self.value = key, value

    def prune(self, study, trial) -> bool:
        return trial.params.get(self.key) == self.value


def _search(tmp_path, cfg, space: str, trials: int, **kw) -> Search:
    path = tmp_path / "space.yaml"
    path.write_text(space)
    work_dir = kw.pop("work_dir", tmp_path / "tune")
    return Search(cfg=cfg, params=load_space(path, cfg), work_dir=work_dir, trials=trials, device="cpu", **kw)


def _rows(tmp_path, name: str = "tune") -> list[dict]:
    return list(csv.DictReader((tmp_path / name / "trials.csv").open()))


def test_complete_pruned_and_failed_trials(tmp_path, toy_cfg):
    # nan_from 0: every loss is NaN, training diverges (max_nonfinite 1); 100000: never NaN, but pruned
    space = "model.nan_from: {type: categorical, choices: [null, 0, 100000]}\n"
    toy_cfg["model"]["nan_from"] = None  # a key the space searches must be in the config (--set adds it)
    search = _search(tmp_path, toy_cfg, space, 3, sampler="grid", pruner=PruneWhen("model.nan_from", 100000))
    out = io.StringIO()
    result = run_search(search, out)
    assert result.status == 0
    rows = {r["model.nan_from"]: r for r in _rows(tmp_path)}
    assert len(rows) == 3 and sorted(r["number"] for r in rows.values()) == ["0", "1", "2"]
    done, failed, pruned = rows["null"], rows["0"], rows["100000"]
    assert done["state"] == "complete" and done["epochs"] == "2" and 0.0 <= float(done["bbox/AP"]) <= 1.0
    assert failed["state"] == "fail" and "non-finite losses in a row" in failed["message"] and failed["bbox/AP"] == ""
    assert pruned["state"] == "pruned" and pruned["epochs"] == "1"
    assert pruned["message"].startswith("pruned at epoch 1 of 2: bbox/AP ")
    pruned_dir = tmp_path / "tune" / f"trial_{pruned['number']}"
    assert pruned["work_dir"] == str(pruned_dir)
    assert torch.load(pruned_dir / "latest.pth", weights_only=True)["meta"]["epoch"] == 1  # its checkpoint is kept
    assert "training stopped early (pruned at epoch 1 of 2" in (pruned_dir / "log.txt").read_text()
    states = {t.number: t.state for t in result.study.trials}
    assert sorted(states.values(), key=str) == sorted(
        [TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED], key=str
    )
    text = out.getvalue()
    assert f"trial {failed['number']} failed" in text and "(TrainingDiverged: training stopped:" in text
    assert f"trial {pruned['number']} pruned" in text and "best " in text and "model.nan_from=" in text
    best = yaml.safe_load((tmp_path / "tune" / "best.yaml").read_text())
    assert best["model"]["nan_from"] is None and best["train"]["max_nonfinite"] == 1  # the resolved config
    assert (tmp_path / "tune" / "history.png").is_file() and (tmp_path / "tune" / "slices.png").is_file()
    assert not (tmp_path / "tune" / "importance.png").exists()  # one parameter: no importances


def test_rerun_continues_the_study(tmp_path, toy_cfg):
    space = "optimizer.lr: {type: float, low: 0.001, high: 0.1, log: true}\nscheduler.warmup_iters: {type: int, low: 0, high: 4}\n"
    run_search(_search(tmp_path, toy_cfg, space, 2), io.StringIO())
    first = _rows(tmp_path)
    out = io.StringIO()
    result = run_search(_search(tmp_path, toy_cfg, space, 3), out)
    rows = _rows(tmp_path)
    assert [r["number"] for r in rows] == ["0", "1", "2"] and rows[:2] == first  # one more, the others untouched
    assert "2 of 3 trials exist" in out.getvalue() and "trial 2 complete" in out.getvalue()
    assert not list((tmp_path / "tune").glob("trial_*/previous-*"))
    for name in ("importance.png", "parallel.png", "history.png", "slices.png", "best.yaml", "study.db"):
        assert (tmp_path / "tune" / name).is_file(), name
    again = io.StringIO()
    run_search(_search(tmp_path, toy_cfg, space, 3), again)  # nothing left to do
    assert len(_rows(tmp_path)) == 3 and "3 of 3 trials exist" in again.getvalue()
    assert result.status == 0


def test_a_study_keeps_its_metric_and_direction(tmp_path, toy_cfg):
    space = "optimizer.lr: {type: float, low: 0.001, high: 0.1}\n"
    run_search(_search(tmp_path, toy_cfg, space, 1), io.StringIO())
    with pytest.raises(StudyError, match="searches to maximize bbox/AP, not to minimize bbox/AP"):
        run_search(_search(tmp_path, toy_cfg, space, 2, direction="minimize"), io.StringIO())
    with pytest.raises(StudyError, match="not to maximize toy/l1; give the same --metric"):
        run_search(_search(tmp_path, toy_cfg, space, 2, metric="toy/l1"), io.StringIO())
    # another work dir is a new study
    result = run_search(_search(tmp_path, toy_cfg, space, 1, metric="toy/l1", work_dir=tmp_path / "l1"), io.StringIO())
    assert len(result.study.trials) == 1


LR = "optimizer.lr: {type: float, low: 0.001, high: 0.1}\n"


def _snapshot(work_dir) -> dict:
    return {p.relative_to(work_dir): p.read_bytes() for p in sorted(work_dir.rglob("*")) if p.is_file()}


def test_a_second_study_in_the_work_dir_is_refused_before_any_trial(tmp_path, toy_cfg):
    run_search(_search(tmp_path, toy_cfg, LR, 2), io.StringIO())
    work = tmp_path / "tune"
    before = _snapshot(work)
    with pytest.raises(StudyError) as e:
        run_search(_search(tmp_path, toy_cfg, LR, 1, study_name="other"), io.StringIO())
    assert str(e.value) == (
        f"{work / 'study.db'} holds study 'tune' (2 trials): give --study-name tune to continue it, or another "
        "--work-dir for a new study"
    )
    after = _snapshot(work)
    assert after.keys() == before.keys() and all(after[k] == before[k] for k in before if k.name != "study.db")
    assert [s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{work / 'study.db'}")] == ["tune"]


def test_a_copied_work_dir_is_not_a_new_study(tmp_path, toy_cfg):
    run_search(_search(tmp_path, toy_cfg, LR, 1), io.StringIO())
    shutil.copytree(tmp_path / "tune", tmp_path / "tunecopy")  # its default study name would be 'tunecopy'
    with pytest.raises(StudyError, match=r"tunecopy/study.db holds study 'tune' \(1 trial\): give --study-name tune"):
        run_search(_search(tmp_path, toy_cfg, LR, 2, work_dir=tmp_path / "tunecopy"), io.StringIO())
    assert not (tmp_path / "tunecopy" / "trial_0" / "previous-1").exists()
    out = io.StringIO()
    run_search(_search(tmp_path, toy_cfg, LR, 2, work_dir=tmp_path / "tunecopy", study_name="tune"), out)
    assert "study 'tune' in" in out.getvalue() and "1 of 2 trials exist" in out.getvalue()
    assert [r["number"] for r in _rows(tmp_path, "tunecopy")] == ["0", "1"]


def test_a_shared_storage_holds_a_study_per_work_dir(tmp_path, toy_cfg):
    (tmp_path / "db").mkdir()
    url = f"sqlite:///{tmp_path / 'db' / 'studies.db'}"
    for name in ("a", "b"):  # two studies, each in its own work dir: both run
        result = run_search(_search(tmp_path, toy_cfg, LR, 1, storage=url, work_dir=tmp_path / name), io.StringIO())
        assert result.status == 0 and len(result.study.trials) == 1
    with pytest.raises(StudyError, match=r"holds study 'a' \(1 trial\): give --study-name a to continue it"):
        run_search(
            _search(tmp_path, toy_cfg, LR, 1, storage=url, work_dir=tmp_path / "a", study_name="c"), io.StringIO()
        )
    assert [r["number"] for r in _rows(tmp_path, "a")] == ["0"]


def test_best_yaml_is_the_best_trials_own_config(tmp_path, toy_cfg):
    run_search(_search(tmp_path, toy_cfg, LR, 1), io.StringIO())
    trial_cfg = yaml.safe_load((tmp_path / "tune" / "trial_0" / "config.yaml").read_text())
    toy_cfg["train"]["max_nonfinite"] = 5  # the same study run again with another --set: no trial to run
    out = io.StringIO()
    run_search(_search(tmp_path, toy_cfg, LR, 1), out)
    best = yaml.safe_load((tmp_path / "tune" / "best.yaml").read_text())
    assert best == trial_cfg and best["train"]["max_nonfinite"] == 1 and "warning" not in out.getvalue()
    (tmp_path / "tune" / "trial_0" / "config.yaml").unlink()  # gone: rebuilt from this config, with a warning
    out = io.StringIO()
    run_search(_search(tmp_path, toy_cfg, LR, 1), out)
    text = (tmp_path / "tune" / "best.yaml").read_text()
    assert yaml.safe_load(text)["train"]["max_nonfinite"] == 5
    assert yaml.safe_load(text)["optimizer"]["lr"] == trial_cfg["optimizer"]["lr"]
    assert "# rebuilt from this search's config and the trial's values:" in text
    assert "warning: best.yaml is this search's config with trial 0's values" in out.getvalue()


def test_a_postgres_url_is_named_with_the_fix(tmp_path, toy_cfg):
    url = "postgres://user:secret@dbhost/optuna"
    with pytest.raises(StudyError, match="give --storage postgresql://user:\\*\\*\\*@dbhost/optuna") as e:
        run_search(_search(tmp_path, toy_cfg, LR, 1, storage=url), io.StringIO())
    assert "secret" not in str(e.value) and not (tmp_path / "tune" / "trial_0").exists()


def test_a_signal_stops_the_search_and_records_the_trial(tmp_path, toy_cfg):
    class Interrupt(optuna.pruners.BasePruner):
        """SIGINT to this process during the first trial's first evaluation (the trainer's handler is active)."""

        def prune(self, study, trial) -> bool:
            if trial.number == 0:
                os.kill(os.getpid(), signal.SIGINT)
            return False

    space = "optimizer.lr: {type: float, low: 0.001, high: 0.1}\n"
    toy_cfg["train"]["max_epochs"] = 3
    out = io.StringIO()
    result = run_search(_search(tmp_path, toy_cfg, space, 3, pruner=Interrupt()), out)
    assert result.status == 130
    (row,) = _rows(tmp_path)
    assert row["state"] == "fail" and row["message"] == "stopped by SIGINT"
    assert torch.load(tmp_path / "tune" / "trial_0" / "latest.pth", weights_only=True)["meta"]["epoch"] == 1
    assert "stopped by SIGINT (trial 0 recorded as failed)" in out.getvalue()


def test_a_trial_whose_process_died_is_marked_failed(tmp_path, toy_cfg):
    space = "optimizer.lr: {type: float, low: 0.001, high: 0.1}\n"
    search = _search(tmp_path, toy_cfg, space, 2)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "tune").mkdir()
    study = optuna.create_study(storage=search.url, study_name=search.name, direction="maximize")
    trial = study.ask()  # left running by a process that is gone
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", dead.pid)
    run_search(search, io.StringIO())
    rows = _rows(tmp_path)
    assert [r["state"] for r in rows] == ["fail", "complete"]
    assert rows[0]["message"] == "its process ended without recording a result (killed?)"


@pytest.mark.filterwarnings("ignore:The value -1.0 of the parameter:UserWarning")  # FixedTrial says so
def test_a_sampled_value_the_config_refuses_fails_the_trial(tmp_path, toy_cfg):
    params = load_space(_write(tmp_path, "optimizer.lr: {type: float, low: 0.001, high: 0.1}\n"), toy_cfg)
    runner = TrialRunner(toy_cfg, params, tmp_path / "tune", "bbox/AP", device="cpu")
    outcome = runner(optuna.trial.FixedTrial({"optimizer.lr": -1.0}, number=4))
    assert outcome.state == TrialState.FAIL
    assert outcome.message == "the sampled config is not valid: optimizer.lr must be a number > 0, got -1.0"
    assert outcome.sampled  # left out of the same-failure count
    assert "ConfigError" in (tmp_path / "tune" / "trial_4" / "error.txt").read_text()


def test_a_drawn_combination_the_trainer_would_refuse_fails_as_the_sampled_values_doing(tmp_path, toy_cfg):
    # each value passes the preflight with some draw of the other; AdamW with momentum 0.95 is refused by the
    # Trainer's check (a key the type never reads): now a sampled-config failure, before the trial's Trainer
    space = (
        "optimizer.type: {type: categorical, choices: [SGD, AdamW]}\n"
        "optimizer.momentum: {type: categorical, choices: [0.9, 0.95]}\n"
    )
    params = load_space(_write(tmp_path, space), toy_cfg)
    runner = TrialRunner(toy_cfg, params, tmp_path / "tune", "bbox/AP", device="cpu")
    outcome = runner(optuna.trial.FixedTrial({"optimizer.type": "AdamW", "optimizer.momentum": 0.95}, number=0))
    assert outcome.state == TrialState.FAIL and outcome.sampled
    assert outcome.message.startswith("the sampled config is not valid: optimizer.momentum: 0.95 is not used by")
    assert not (tmp_path / "tune" / "trial_0" / "config.yaml").exists()  # no training run was started


def test_the_same_error_again_and_again_stops_the_search(tmp_path, toy_cfg, monkeypatch):
    def full_disk(self, trial, cfg, out):
        raise OSError(f"[Errno 28] No space left on device: '{out}/latest.pth'")

    monkeypatch.setattr(TrialRunner, "_train", full_disk)
    out = io.StringIO()
    result = run_search(_search(tmp_path, toy_cfg, LR, 10), out)
    assert result.status == 1 and len(_rows(tmp_path)) == 3
    assert "3 trials in a row failed with the same error (OSError: [Errno 28] No space left" in out.getvalue()


def test_divergence_does_not_stop_the_search(tmp_path, toy_cfg):
    # every trial diverges (the sampled values' doing, as a learning rate too high): each is recorded, none stops
    space = "model.nan_from: {type: categorical, choices: [0, 1]}\n"
    toy_cfg["model"]["nan_from"] = None
    out = io.StringIO()
    result = run_search(_search(tmp_path, toy_cfg, space, 4), out)
    rows = _rows(tmp_path)
    assert len(rows) == 4 and {r["state"] for r in rows} == {"fail"}
    assert all(r["message"].startswith("TrainingDiverged") for r in rows)
    assert "in a row failed" not in out.getvalue() and "no trial completed" in out.getvalue()
    assert result.status == 1


def test_failures_of_the_sampled_values_neither_count_nor_break_a_run(tmp_path, toy_cfg):
    from detkit.tune.search import SearchLoop
    from detkit.tune.trial import TrialOutcome

    loop = SearchLoop(_search(tmp_path, toy_cfg, LR, 10), io.StringIO())
    diverged = [TrialOutcome(TrialState.FAIL, f"TrainingDiverged: lr {i}", sampled=True) for i in range(3)]
    missing = TrialOutcome(TrialState.FAIL, "FileNotFoundError: data/x.json")
    assert not any(loop.same_failure(o) for o in diverged)
    assert [loop.same_failure(o) for o in (missing, diverged[0], missing, diverged[1], missing)] == [
        False,
        False,
        False,
        False,
        True,
    ]


def test_timeout_starts_no_new_trial(tmp_path, toy_cfg):
    out = io.StringIO()
    result = run_search(
        _search(tmp_path, toy_cfg, "optimizer.lr: {type: float, low: 0.001, high: 0.1}\n", 5, timeout=1e-9), out
    )
    assert result.status == 0 and not result.study.trials
    assert "--timeout 1e-09s reached: no new trial started" in out.getvalue()


def _write(tmp_path, text: str):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_journal_file_storage(tmp_path, toy_cfg):
    space = "optimizer.lr: {type: float, low: 0.001, high: 0.1}\n"
    journal = tmp_path / "shared" / "study.log"
    journal.parent.mkdir()
    url = f"journal:{journal}"
    run_search(_search(tmp_path, toy_cfg, space, 1, storage=url), io.StringIO())
    out = io.StringIO()
    result = run_search(_search(tmp_path, toy_cfg, space, 2, storage=url), out)
    assert journal.is_file() and not (tmp_path / "tune" / "study.db").exists()
    assert [t.state for t in result.study.trials] == [TrialState.COMPLETE] * 2
    assert f"study 'tune' in journal:{journal}: 1 of 2 trials exist" in out.getvalue()


def test_a_storage_that_cannot_be_opened(tmp_path, toy_cfg):
    space = "optimizer.lr: {type: float, low: 0.001, high: 0.1}\n"
    missing = tmp_path / "no" / "such" / "x.db"
    with pytest.raises(StudyError, match=f"--storage sqlite:///{missing}: the folder {missing.parent} does not exist"):
        run_search(_search(tmp_path, toy_cfg, space, 1, storage=f"sqlite:///{missing}"), io.StringIO())
    (tmp_path / "not_a_db").write_text("text, not a database")
    with pytest.raises(StudyError, match=r"--storage sqlite:///.*not_a_db: cannot open it \(DatabaseError"):
        run_search(_search(tmp_path, toy_cfg, space, 1, storage=f"sqlite:///{tmp_path / 'not_a_db'}"), io.StringIO())
    assert not missing.parent.exists() and not (tmp_path / "tune" / "trial_0").exists()


def test_pruning_counts_iterations_with_max_iters(tmp_path, toy_cfg):
    # train.max_iters: Optuna's step is the iteration of the evaluation, the trial's end is max_iters (not max_epochs)
    toy_cfg["train"].update(max_iters=4, eval_interval=2)
    toy_cfg["model"]["nan_from"] = None
    space = "model.nan_from: {type: categorical, choices: [null, 100000]}\n"
    search = _search(tmp_path, toy_cfg, space, 2, sampler="grid", pruner=PruneWhen("model.nan_from", 100000))
    assert run_search(search, io.StringIO()).status == 0
    rows = {r["model.nan_from"]: r for r in _rows(tmp_path)}
    assert rows["null"]["state"] == "complete" and rows["null"]["epochs"] == "4"
    pruned = rows["100000"]
    assert pruned["state"] == "pruned" and pruned["epochs"] == "2"
    assert pruned["message"].startswith("pruned at iteration 2 of 4: bbox/AP ")
