"""train.compile / --compile reach detkit.models.compile.compile_model (the compilation itself: tests/models/test_compile.py)."""

from __future__ import annotations

import pytest

from detkit.engine import Trainer


@pytest.fixture
def calls(monkeypatch):
    import detkit.models.compile as compile_module

    seen = []
    monkeypatch.setattr(compile_module, "compile_model", lambda model, **kw: seen.append((type(model).__name__, kw)))
    return seen


def test_train_compile_compiles_the_model_before_ddp_and_ema(toy, tmp_path, calls):
    Trainer(toy.toy_config(max_epochs=1, compile=True), work_dir=tmp_path / "a", device="cpu")
    assert calls == [("ToyDetector", {})]  # trained weights change: not frozen
    Trainer(toy.toy_config(max_epochs=1), work_dir=tmp_path / "b", device="cpu")
    assert len(calls) == 1


def test_cli_compile_flags(calls):
    from detkit.cli import eval as eval_cli
    from detkit.cli import infer as infer_cli
    from detkit.cli import train as train_cli

    args = eval_cli.parse_args(["c.yaml", "w.pth", "--compile"])
    wrap = eval_cli.compile_wrap(args, None)
    marker = object()
    assert wrap(marker) is marker and calls == [("object", {"freeze": True})]
    assert eval_cli.compile_wrap(eval_cli.parse_args(["c.yaml", "w.pth"]), None) is None
    assert infer_cli.parse_args(["c.yaml", "w.pth", "x.png", "--out-dir", "o", "--compile"]).compile
    assert train_cli.parse_args(["c.yaml", "--compile"]).compile
