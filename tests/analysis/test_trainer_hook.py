"""The trainer writes the PR curves and confusion matrix of each new best evaluation into the work dir."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "engine"))
import detkit_toy  # noqa: E402,F401  (registers ToyDetector)


@pytest.fixture(scope="module")
def tiny_shapes(tmp_path_factory):
    from detkit.data.synthetic import make_shapes

    return make_shapes(
        tmp_path_factory.mktemp("shapes"), num_train=4, num_val=3, size=(64, 64), seed=0, empty_fraction=0.0
    )


def _config(p: dict) -> dict:
    cfg = detkit_toy.toy_config(max_epochs=2, log_interval=1)
    cfg["data"]["train"] = {
        "type": "CocoDataset",
        "ann_file": str(p["train_ann_file"]),
        "img_dir": str(p["train_img_dir"]),
        "pipeline": [],
    }
    cfg["data"]["val"] = {
        "type": "CocoDataset",
        "ann_file": str(p["val_ann_file"]),
        "img_dir": str(p["val_img_dir"]),
        "pipeline": [],
    }
    return cfg


def test_best_evaluation_writes_plots(tiny_shapes, tmp_path):
    from detkit.engine import Trainer
    from detkit.evaluation import CocoEvaluator

    tr = Trainer(_config(tiny_shapes), work_dir=tmp_path, device="cpu")
    assert isinstance(tr.evaluator, CocoEvaluator)  # the real evaluator, not the toy one
    tr.fit()
    for name in ("pr_curves.png", "confusion_matrix.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG" and (tmp_path / name).stat().st_size > 10_000
    csv_rows = (tmp_path / "confusion_matrix.csv").read_text().splitlines()
    assert csv_rows[0].endswith("pred:background") and len(csv_rows) == 1 + 5  # 4 shapes classes + background
    assert "evaluation plots: pr_curves.png" in (tmp_path / "log.txt").read_text()
    assert tr.evaluator.last_results is not None and tr.evaluator.coco_gt is not None


def test_report_failure_does_not_stop_training(tiny_shapes, tmp_path, monkeypatch):
    from detkit.analysis import report
    from detkit.engine import Trainer

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(report, "write_evaluator_report", boom)
    cfg = _config(tiny_shapes)
    cfg["train"]["max_epochs"] = 1
    Trainer(cfg, work_dir=tmp_path, device="cpu").fit()
    assert (tmp_path / "best.pth").is_file() and not (tmp_path / "pr_curves.png").exists()
    assert "could not write the evaluation plots (RuntimeError: disk on fire)" in (tmp_path / "log.txt").read_text()


def test_toy_evaluator_writes_nothing(toy_engine, tmp_path):
    from detkit.engine import Trainer

    Trainer(detkit_toy.toy_config(max_epochs=1), work_dir=tmp_path, device="cpu").fit()
    assert (tmp_path / "best.pth").is_file() and not (tmp_path / "pr_curves.png").exists()


@pytest.fixture
def toy_engine(monkeypatch):
    from detkit.engine import builders

    monkeypatch.setattr(builders, "build_dataset", detkit_toy.toy_build_dataset)
    monkeypatch.setattr(builders, "build_dataloader", detkit_toy.toy_build_dataloader)
    monkeypatch.setattr(builders, "build_evaluator", detkit_toy.toy_build_evaluator)
