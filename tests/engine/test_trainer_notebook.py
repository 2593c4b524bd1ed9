"""The Trainer from Python, as a notebook uses it: a config name or path, log.txt let go at the end of fit (a
later model built in the same process appended its lines to the finished run's log), an error's traceback kept
in log.txt."""

from __future__ import annotations

import logging

import pytest
import yaml

from detkit.engine import Trainer


def test_log_file_is_closed_after_fit_and_errors_keep_their_traceback(toy, tmp_path, monkeypatch):
    Trainer(toy.toy_config(max_epochs=1), work_dir=tmp_path / "a", device="cpu").fit()
    log = tmp_path / "a" / "log.txt"
    size = log.stat().st_size
    logging.getLogger("detkit").info("a later cell builds another model")
    assert log.stat().st_size == size  # the finished run's log is left alone
    assert not [h for h in logging.getLogger("detkit").handlers if isinstance(h, logging.FileHandler)]

    trainer = Trainer(toy.toy_config(max_epochs=1), work_dir=tmp_path / "b", device="cpu")

    def broken(batch):
        raise RuntimeError("a step that fails")

    monkeypatch.setattr(trainer, "_train_step", broken)
    with pytest.raises(RuntimeError, match="a step that fails"):
        trainer.fit()
    text = (tmp_path / "b" / "log.txt").read_text()
    assert "training stopped by an error" in text and "Traceback" in text and "a step that fails" in text


def test_a_config_path_is_taken_as_init_model_takes_it(toy, tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(toy.toy_config(max_epochs=1)))
    trainer = Trainer(str(path), work_dir=tmp_path / "w", device="cpu")
    assert trainer.cfg["train"]["max_epochs"] == 1
    trainer.fit()
    assert (tmp_path / "w" / "latest.pth").is_file()


def test_deterministic_training_puts_torch_back(toy, tmp_path):
    import torch

    assert not torch.are_deterministic_algorithms_enabled()
    trainer = Trainer(toy.toy_config(max_epochs=1), work_dir=tmp_path / "d", device="cpu", deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()  # during the run
    trainer.fit()
    assert not torch.are_deterministic_algorithms_enabled()  # the next cells run as before


def test_two_trainers_of_one_process_write_their_own_logs(toy, tmp_path):
    """a = Trainer(...); b = Trainer(...); a.fit(); b.fit(): a's lines went into b's log.txt and b's into none."""
    a = Trainer(toy.toy_config(max_epochs=1), work_dir=tmp_path / "a", device="cpu")
    b = Trainer(toy.toy_config(max_epochs=1), work_dir=tmp_path / "b", device="cpu")
    a.fit()
    b.fit()
    for name in ("a", "b"):
        text = (tmp_path / name / "log.txt").read_text()
        assert "training done" in text and str(tmp_path / name / "best.pth") in text, name
        other = "b" if name == "a" else "a"
        assert str(tmp_path / other / "best.pth") not in text, name


def test_a_construction_that_fails_puts_torch_back(toy, tmp_path, monkeypatch):
    import torch

    from detkit.engine import trainer as trainer_module

    def broken(*args, **kwargs):
        raise FileNotFoundError("data/train.json")

    monkeypatch.setattr(trainer_module, "build_data", broken)
    with pytest.raises(FileNotFoundError):
        Trainer(toy.toy_config(max_epochs=1), work_dir=tmp_path / "x", device="cpu", deterministic=True)
    assert not torch.are_deterministic_algorithms_enabled()


def test_a_diverged_run_keeps_its_last_finite_checkpoint(toy, tmp_path, caplog):
    """latest.pth was written during a non-finite streak with NaN weights, and the message called it 'the last
    good checkpoint': resuming from it failed at once and the good one was gone (runs-that-go-wrong walk-through)."""
    import torch

    from detkit.engine import TrainingDiverged
    from detkit.engine.step import count_nonfinite

    trainer = Trainer(toy.toy_config(max_epochs=1), work_dir=tmp_path / "n", device="cpu")
    with pytest.raises(TrainingDiverged, match="no checkpoint was written yet"):
        trainer.nonfinite = int(trainer.tcfg["max_nonfinite"]) - 1
        count_nonfinite(trainer, ["loss"])  # before any checkpoint: not 'the last good checkpoint is latest.pth'
    trainer.save("latest.pth")
    good = (tmp_path / "n" / "latest.pth").read_bytes()
    with torch.no_grad():
        next(trainer.model.parameters()).fill_(float("nan"))
    with caplog.at_level(logging.WARNING, logger="detkit"):
        trainer.save("latest.pth", best=True)
    assert (tmp_path / "n" / "latest.pth").read_bytes() == good and not (tmp_path / "n" / "best.pth").exists()
    assert "latest.pth, best.pth not written" in caplog.text and "no longer finite" in caplog.text
    trainer._release()
