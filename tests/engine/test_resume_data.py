"""A resume with other class names than the run's is refused, naming what changed, unless allowed (the best is then
measured anew, the old best.pth kept aside); other data with the same classes (files, folders, a held-out split) is a
warning, since paths change legitimately (a moved project, a link); a resume with nothing left to run writes no
file."""

from __future__ import annotations

import pytest
import torch

from detkit.engine import PreflightError, Trainer
from detkit.engine.resume_data import class_change, data_changes
from detkit.engine.workdir import LOCK_NAME
from detkit.registry import DATASETS


def _files(folder):
    """Every file of the work dir with its bytes (the lock file is not the run's)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.name != LOCK_NAME}


@pytest.fixture
def named_toy(toy):
    """A toy dataset that reads a folder (``img_dir``, only named) and has the given class names."""
    if "FolderToyDataset" not in DATASETS:

        @DATASETS.register
        class FolderToyDataset(toy.ToyDataset):
            def __init__(self, img_dir: str = "toy", names=("toy0", "toy1"), **kwargs):
                super().__init__(num_classes=len(names), **kwargs)
                self.img_dir, self.class_names = img_dir, list(names)

    return toy


def _config(toy, img_dir="a/train", names=("toy0", "toy1"), val_dir="a/val", **train):
    cfg = toy.toy_config(**train)
    cfg["data"]["train"] = {"type": "FolderToyDataset", "num_samples": 8, "img_dir": img_dir, "names": list(names)}
    cfg["data"]["val"] = {"type": "FolderToyDataset", "num_samples": 4, "seed": 99, "img_dir": val_dir}
    cfg["data"]["val"]["names"] = list(names)
    return cfg


@pytest.fixture
def run(named_toy, tmp_path):
    work = tmp_path / "w"
    Trainer(_config(named_toy, max_epochs=1), work_dir=work, device="cpu").fit()
    return work


def _data(train_dir: str, val_classes: list, pipeline: list | None = None, ann_file: str = "d/t.json") -> dict:
    train = {"type": "MixDataset", "dataset": {"img_dir": train_dir, "ann_file": ann_file}}
    return {"data": {"train": train, "val": {"img_dir": "d/val", "classes": val_classes, "pipeline": pipeline}}}


def test_data_changes_names_paths_classes_and_class_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    old = _data("d/train", ["a", "b"], [{"type": "Resize"}])
    same = _data(f"{tmp_path}/d/train/", ["a", "b"], [], ann_file="./d/t.json")  # written otherwise; a pipeline
    assert data_changes(old, same) == [] and class_change(["a", "b"], ["a", "b"]) is None
    assert data_changes(_data("real", ["a"]), _data(f"{tmp_path}/link", ["a"])) == []  # a link to the same folder
    other = _data("e/train", ["a", "c"])
    changes = data_changes(old, other)
    assert class_change(["a", "b"], ["a", "c"]) == "class names [a, b] -> [a, c]"
    assert changes[1] == "data.val.classes [a, b] -> [a, c]" and len(changes) == 2
    assert changes[0].startswith("data.train.dataset.img_dir d/train -> e/train"), changes[0]
    assert data_changes(old, {"data": {**other["data"], "val": None}}) == changes[:1]  # no validation
    split = {"data": {"val": {"img_dir": "d", "val_fraction": 0.2}}}
    assert data_changes(split, {"data": {"val": {"img_dir": "d", "val_fraction": 0.5}}}) == [
        "data.val.val_fraction 0.2 -> 0.5"
    ]


def test_a_resume_with_other_classes_is_refused_and_touches_nothing(named_toy, run):
    before = _files(run)
    cfg = _config(named_toy, names=("cat", "dog"), img_dir="b/train", max_epochs=2)
    with pytest.raises(PreflightError) as e:
        Trainer(cfg, work_dir=run, device="cpu", resume=True)
    msg = str(e.value)
    assert "class names [toy0, toy1] -> [cat, dog]" in msg and "data.train.img_dir" in msg, msg
    assert "measured on the old data" in msg and "\n" not in msg and str(run / "config.yaml") in msg
    assert "new --work-dir" in msg and "--load-from" in msg and "--allow-data-change" in msg
    assert _files(run) == before


def test_other_data_with_the_same_classes_is_a_warning(named_toy, run, detkit_log):
    best = torch.load(run / "best.pth", weights_only=True)["meta"]["best"]
    for cfg, named in [
        (_config(named_toy, img_dir="b/train", max_epochs=2), "data.train.img_dir a/train -> b/train"),
        (_config(named_toy, val_dir="b/val", max_epochs=2), "data.val.img_dir a/val -> b/val"),
    ]:
        tr = Trainer(cfg, work_dir=run, device="cpu", resume=True)
        warning = next(m for m in reversed(detkit_log) if m.startswith("resuming"))
        assert named in warning and "--allow-data-change" in warning and "measured on the old data" in warning
        assert tr.best == best  # kept: the evaluations go on being compared with it
        del tr  # (a Trainer holds its work dir until fitted or deleted)
    tr = Trainer(_config(named_toy, max_epochs=2), work_dir=run, device="cpu", resume=True)  # epochs may change
    tr.fit()
    assert torch.load(run / "latest.pth", weights_only=True)["meta"]["epoch"] == 2


def test_allowed_the_best_is_measured_anew_and_the_old_one_kept(named_toy, run, detkit_log):
    old_best = (run / "best.pth").read_bytes()
    cfg = _config(named_toy, names=("cat", "dog"), img_dir="b/train", max_epochs=2)
    tr = Trainer(cfg, work_dir=run, device="cpu", resume=True, allow_data_change=True)
    warning = next(m for m in detkit_log if m.startswith("resuming on other data"))
    assert tr.best == {} and "data.train.img_dir" in warning and "class names [toy0, toy1] -> [cat, dog]" in warning
    tr.fit()
    assert (run / "best.before-resume-1.pth").read_bytes() == old_best
    for name in ("best.pth", "latest.pth"):
        meta = torch.load(run / name, weights_only=True)["meta"]
        assert meta["class_names"] == ["cat", "dog"] and meta["best"]["epoch"] == 2, name


def test_a_resume_with_nothing_to_do_writes_no_file(named_toy, run, detkit_log):
    Trainer(_config(named_toy, max_epochs=3, checkpoint_interval=1), work_dir=run, device="cpu", resume=True).fit()
    before = _files(run)
    for max_epochs, ckpt in [(2, run / "latest.pth"), (3, True), (2, run / "epoch_2.pth")]:
        cfg = _config(named_toy, max_epochs=max_epochs, checkpoint_interval=1, log_interval=1)  # another config
        metrics = Trainer(cfg, work_dir=run, device="cpu", resume=ckpt).fit()
        assert detkit_log[-1].startswith("nothing to do") and metrics
        assert _files(run) == before  # config.yaml, metrics.jsonl (rows past epoch 2 too), log.txt: as they were
