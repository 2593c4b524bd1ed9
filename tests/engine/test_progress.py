"""Long work is visible: tqdm bars on a terminal (none in files), one line per epoch, a final summary."""

from __future__ import annotations

import io
import re

from detkit.engine import Trainer
from detkit.engine.evaluate import evaluate


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def fake_terminal(monkeypatch) -> tuple[FakeTerminal, FakeTerminal]:
    """stdout and stderr that say they are terminals (set in the test body: pytest's capture resets fixtures')."""
    out, err = FakeTerminal(), FakeTerminal()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    return out, err


def _eval_parts(toy):
    cfg = toy.toy_config()
    val = toy.toy_build_dataset(cfg["data"]["val"])
    loader = toy.toy_build_dataloader(cfg, "val", dataset=val)
    model = toy.ToyDetector(class_names=val.class_names)
    return model, loader, toy.toy_build_evaluator(cfg, val)


def test_evaluation_bar_on_a_terminal(toy, monkeypatch):
    import torch

    terminal = fake_terminal(monkeypatch)
    evaluate(*_eval_parts(toy), torch.device("cpu"))
    err = terminal[1].getvalue()
    assert "evaluating:   0%" in err and "0/2" in err and "\r" in err  # tqdm frames: batches done, rate, ETA


def test_no_bar_when_output_is_not_a_terminal(toy, capsys):
    import torch

    metrics = evaluate(*_eval_parts(toy), torch.device("cpu"))
    captured = capsys.readouterr()
    assert set(metrics) == {"bbox/AP", "toy/l1"} and "\r" not in captured.err + captured.out
    assert "evaluating" not in captured.err


def test_training_on_a_terminal_leaves_one_line_per_epoch_and_a_summary(toy, monkeypatch, tmp_path):
    terminal = fake_terminal(monkeypatch)
    Trainer(toy.toy_config(max_epochs=2, log_interval=1), work_dir=tmp_path, device="cpu").fit()
    lines = terminal[0].getvalue().splitlines()
    epochs = [ln for ln in lines if re.search(r"INFO epoch \d/2  loss", ln)]
    assert len(epochs) == 2 and "bbox/AP" in epochs[0] and "(new best)" in epochs[0]
    assert not [ln for ln in lines if " iter " in ln or "evaluation at epoch" in ln]  # those go to log.txt
    text = "\n".join(lines)
    for expected in (
        "training done: epoch 2",
        f"best.pth    {tmp_path / 'best.pth'}",
        f"latest.pth  {tmp_path / 'latest.pth'}",
        str(tmp_path / "losses.png"),
        f"log         {tmp_path / 'log.txt'}",
        f"evaluate: detkit eval {tmp_path / 'config.yaml'} {tmp_path / 'best.pth'}",
        "infer:    detkit infer",
    ):
        assert expected in text, expected
    assert "export:" not in text  # the toy model has no ONNX export: no command that would fail
    log = (tmp_path / "log.txt").read_text()
    assert "iter 4/4" in log and "evaluation at epoch 2 (AP, AR, IoU and Acc in 0..1" in log
    assert "epoch 1/2:   0%" in terminal[1].getvalue()  # the training bar, on stderr


def test_the_summary_offers_export_only_for_exportable_models(tmp_path):
    from detkit.engine.summary import summary

    best = {"metric": "bbox/AP", "value": 0.5, "epoch": 2}
    args = (tmp_path, best, [], "detkit {}", 60.0, 2, True)
    assert f"export:   detkit export {tmp_path / 'config.yaml'}" in summary(*args)
    assert "export:" not in summary(*args, exportable=False)
    assert "--tile" not in summary(*args)
    infer = next(line for line in summary(*args, tile=(320, 256)).splitlines() if line.startswith("infer:"))
    assert infer.endswith("--tile 320,256")  # a tile-trained model: its infer line tiles too
