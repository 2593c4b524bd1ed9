"""tools/train.py: arguments, work dir, resolved config, one-line errors, resume command."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "engine"))
sys.path.insert(0, str(ROOT / "tools"))
import detkit_toy  # noqa: E402

_spec = importlib.util.spec_from_file_location("detkit_tool_train", ROOT / "tools" / "train.py")
train_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train_tool)


@pytest.fixture
def toy_cfg(monkeypatch, tmp_path):
    from detkit.engine import builders

    monkeypatch.setattr(builders, "build_dataset", detkit_toy.toy_build_dataset)
    monkeypatch.setattr(builders, "build_dataloader", detkit_toy.toy_build_dataloader)
    monkeypatch.setattr(builders, "build_evaluator", detkit_toy.toy_build_evaluator)
    path = tmp_path / "toy_cfg.yaml"
    path.write_text(yaml.safe_dump(detkit_toy.toy_config(max_epochs=1)))
    return path


def test_train_cli_writes_resolved_config_and_checkpoints(toy_cfg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = train_tool.main(
        [str(toy_cfg), "--set", "train.max_epochs=2", "optimizer.lr=0.01", "--seed", "5", "--device", "cpu"]
    )
    assert rc == 0
    work = tmp_path / "work_dirs" / "toy_cfg"  # default: work_dirs/<config stem>
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    assert cfg["train"]["max_epochs"] == 2 and cfg["optimizer"]["lr"] == 0.01 and cfg["seed"] == 5
    assert cfg["train"]["grad_clip"] is None  # engine defaults are written out
    assert torch.load(work / "latest.pth", weights_only=True)["meta"]["epoch"] == 2
    assert (work / "best.pth").is_file() and (work / "metrics.jsonl").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "train.max_epoch=3"], "train.max_epoch"),
        (["--resume"], "checkpoint not found"),
        (["--load-from", "nowhere.pth"], "nowhere.pth"),
        (["--set", "+train.max_epoch=3"], "nearest valid: 'train.max_epochs'"),
    ],
)
def test_train_cli_bad_input_is_one_line_exit_2(toy_cfg, tmp_path, capsys, args, message):
    rc = train_tool.main([str(toy_cfg), "--work-dir", str(tmp_path / "w"), "--device", "cpu", *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("train: error:") and message in err and "\n" not in err


def test_train_cli_missing_config(tmp_path, capsys):
    assert train_tool.main([str(tmp_path / "none.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_resume_command_replaces_load_from():
    cmd = train_tool.resume_command(
        ["c.yaml", "--load-from", "w.pth", "--set", "a=1", "--resume", "x.pth"], Path("out dir")
    )
    assert cmd.endswith("c.yaml --set a=1 --work-dir 'out dir' --resume") and "w.pth" not in cmd
