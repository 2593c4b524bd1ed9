"""tools/eval.py: metric table, --out JSON, one-line errors."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "engine"))
sys.path.insert(0, str(ROOT / "tools"))
import detkit_toy  # noqa: E402

_spec = importlib.util.spec_from_file_location("detkit_tool_eval", ROOT / "tools" / "eval.py")
eval_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eval_tool)


@pytest.fixture
def trained(monkeypatch, tmp_path):
    from detkit.engine import Trainer, builders

    monkeypatch.setattr(builders, "build_dataset", detkit_toy.toy_build_dataset)
    monkeypatch.setattr(builders, "build_dataloader", detkit_toy.toy_build_dataloader)
    monkeypatch.setattr(builders, "build_evaluator", detkit_toy.toy_build_evaluator)
    cfg = detkit_toy.toy_config(max_epochs=1)
    metrics = Trainer(cfg, work_dir=tmp_path / "w", device="cpu").fit()
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, tmp_path / "w" / "latest.pth", metrics


def test_eval_prints_table_and_writes_out(trained, tmp_path, capsys):
    cfg, ckpt, metrics = trained
    out = tmp_path / "res" / "metrics.json"
    assert eval_tool.main([str(cfg), str(ckpt), "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "bbox/AP" in printed and f"{metrics['toy/l1']:.4f}" in printed
    assert json.loads(out.read_text()) == pytest.approx(metrics)


def test_eval_bad_inputs(trained, tmp_path, capsys):
    cfg, ckpt, _ = trained
    assert eval_tool.main([str(cfg), str(tmp_path / "nope.pth")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    wrong = torch.load(ckpt, weights_only=True)
    wrong["model"]["head.weight"] = torch.zeros(3, 3)
    torch.save(wrong, tmp_path / "wrong.pth")
    assert eval_tool.main([str(cfg), str(tmp_path / "wrong.pth"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("eval: error:") and "does not fit the model: 7 of 8 tensors fit" in err and "\n" not in err
    assert eval_tool.main([str(cfg), str(ckpt), "--set", "data.val=null"]) == 2
    assert "data.val is null (trained without validation), so there is nothing to evaluate on; give --data" in (
        capsys.readouterr().err
    )


def test_eval_takes_the_config_the_checkpoint_stores(trained, tmp_path, capsys):
    _, ckpt, _ = trained
    out = tmp_path / "m.json"
    assert eval_tool.main(["-", str(ckpt), "--out", str(out), "--device", "cpu"]) == 0
    assert "bbox/AP" in json.loads(out.read_text())
    capsys.readouterr()
    assert eval_tool.main(["-", str(ckpt), "--set", "data.num_wrkers=0"]) == 2  # --set still checked
    assert "nearest existing key: 'data.num_workers'" in capsys.readouterr().err
    bare = tmp_path / "bare.pth"
    torch.save({"model": torch.load(ckpt, weights_only=True)["model"]}, bare)
    assert eval_tool.main(["-", str(bare)]) == 2 and "stores no config" in capsys.readouterr().err


def test_the_class_order_warning_is_printed_once(trained, tmp_path, capsys):
    cfg, ckpt, _ = trained
    swapped = torch.load(ckpt, weights_only=True)
    swapped["meta"]["class_names"] = list(reversed(swapped["meta"]["class_names"]))
    torch.save(swapped, tmp_path / "swapped.pth")
    assert eval_tool.main([str(cfg), str(tmp_path / "swapped.pth"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert err.count("in another order") == 1, err


def test_eval_data_folder_of_a_segmentor_names_its_two_folders(tmp_path, capsys):
    from detkit.config import load_config

    cfg = load_config("semfpn_r18_shapes", ["data.num_workers=0"])
    torch.save({"model": {}, "meta": {"config": cfg, "class_names": ["bg", "a"]}}, tmp_path / "seg.pth")
    (tmp_path / "maps").mkdir()
    assert eval_tool.main(["-", str(tmp_path / "seg.pth"), "--data", str(tmp_path / "maps")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"eval: error: --data {tmp_path / 'maps'} is a folder, and a semantic segmentor") and (
        "--set data.val.img_dir=IMAGES data.val.mask_dir=LABEL_MAPS" in err and "data.yaml" not in err
    ), err
