"""best.pth holds the weights (EMA and trained), meta and nothing for resuming; every reader of it works."""

from __future__ import annotations

import pytest
import torch

from detkit.engine import Trainer


@pytest.fixture
def run(toy, tmp_path):
    cfg = toy.toy_config(max_epochs=2, ema={"decay": 0.9, "tau": 2})
    Trainer(cfg, work_dir=tmp_path, device="cpu").fit()
    return cfg, tmp_path


def test_best_holds_weights_and_meta_only(run):
    _, work = run
    best = torch.load(work / "best.pth", weights_only=True)
    latest = torch.load(work / "latest.pth", weights_only=True)
    assert set(best) == {"model", "model_raw", "meta"}
    assert {"optimizer", "scheduler", "scaler", "ema", "rng"} <= set(latest)
    assert best["meta"]["config"] == latest["meta"]["config"] and best["meta"]["cat_ids"] is None
    assert best["meta"]["best"]["epoch"] == best["meta"]["epoch"]
    assert not torch.equal(best["model"]["head.weight"], best["model_raw"]["head.weight"])  # EMA vs trained


def test_init_model_evaluate_and_load_from_read_best(run, toy, tmp_path):
    import detkit
    from detkit.engine.evaluate import evaluate_checkpoint

    cfg, work = run
    best = torch.load(work / "best.pth", weights_only=True)
    model = detkit.init_model(None, work / "best.pth", device="cpu")  # the config stored in best.pth
    assert model.class_names == ["toy0", "toy1"]
    assert all(torch.equal(v, best["model"][k]) for k, v in model.state_dict().items())
    metrics, _ = evaluate_checkpoint(cfg, work / "best.pth", device="cpu")
    assert metrics["bbox/AP"] == pytest.approx(best["meta"]["best"]["value"])
    tr = Trainer(toy.toy_config(max_epochs=1), work_dir=tmp_path / "ft", device="cpu", load_from=work / "best.pth")
    assert torch.equal(tr.model.head.weight, best["model"]["head.weight"])  # fine-tuning starts from the EMA weights
