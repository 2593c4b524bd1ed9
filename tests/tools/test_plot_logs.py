"""tools/plot_logs.py: metric and loss curves of several work directories; one-line errors."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
_spec = importlib.util.spec_from_file_location("detkit_tool_plot_logs", ROOT / "tools" / "plot_logs.py")
plot_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plot_tool)


def _run(work_dir: Path, scale: float) -> Path:
    """A work directory written by the engine's own RunRecord (metrics.jsonl + history.json)."""
    from detkit.engine.logger import RunRecord

    rec = RunRecord(work_dir)
    work_dir.mkdir(parents=True)
    for it in range(1, 13):
        rec.add_losses(it, it / 4, 0.01, {"loss": scale / it, "rpn/cls": 0.5 * scale / it})
        if it % 4 == 0:
            rec.add_metrics({"epoch": it // 4, "iter": it, "bbox/AP": 0.1 * it / scale, "bbox/APl": -1.0})
    rec.save_history()
    return work_dir


def test_plot_two_runs(tmp_path, capsys, monkeypatch):
    import detkit.analysis.logs as logs

    figures = []
    save = logs.save_figure

    def keep(fig, path):  # inspect the figure the tool built, then write it as usual
        figures.append([(ax.get_title(), ax.get_ylabel(), ax.get_lines()) for ax in fig.axes if ax.get_visible()])
        return save(fig, path)

    monkeypatch.setattr(logs, "save_figure", keep)
    a, b = _run(tmp_path / "a", 1.0), _run(tmp_path / "b", 2.0)
    out = tmp_path / "cmp.png"
    assert plot_tool.main([str(a), str(b), "--keys", "bbox/AP", "loss", "rpn/cls", "lr", "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 20_000
    (panels,) = figures
    assert [p[0] for p in panels] == ["bbox/AP", "loss", "rpn/cls", "lr"]
    assert panels[0][1] == "bbox/AP (0..1)" and panels[1][1] == "loss"  # metrics say their unit
    ap_a, ap_b = panels[0][2]  # one line per work directory, labelled with its folder name
    assert (ap_a.get_label(), ap_b.get_label()) == ("a", "b")
    assert list(ap_a.get_xdata()) == [1.0, 2.0, 3.0] and list(ap_b.get_ydata()) == pytest.approx([0.2, 0.4, 0.6])
    loss_a = panels[1][2][0]
    assert len(loss_a.get_xdata()) == 12 and loss_a.get_ydata()[0] == pytest.approx(1.0)
    assert plot_tool.main([str(a), "--list"]) == 0
    keys = capsys.readouterr().out
    assert "bbox/AP" in keys and "rpn/cls" in keys and "lr" in keys
    from detkit.analysis.logs import load_series

    s = load_series(a)
    assert s["bbox/AP"]["epoch"] == [1.0, 2.0, 3.0] and s["loss"]["epoch"][-1] == 3.0
    assert "bbox/APl" not in s  # -1 (undefined) is left out
    assert plot_tool.main([str(a), "--keys", "loss", "--x", "iter", "--out", str(tmp_path / "i.png")]) == 0


def test_errors(tmp_path, capsys):
    a = _run(tmp_path / "a", 1.0)
    assert plot_tool.main([str(a), "--keys", "segm/AP", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "segm/AP" in err and "available: " in err and "bbox/AP" in err and err.count("\n") == 1
    (tmp_path / "empty").mkdir()
    assert plot_tool.main([str(tmp_path / "empty"), "--out", str(tmp_path / "x.png")]) == 2
    assert "no metrics.jsonl or history.json" in capsys.readouterr().err


def test_default_keys_are_the_runs_best_metric_and_loss(tmp_path):
    """A segmentation run logs sem/mIoU, not bbox/AP: the default was bbox/AP and failed (exit 2)."""
    from detkit.engine.logger import RunRecord

    seg = tmp_path / "seg"
    seg.mkdir()
    rec = RunRecord(seg)
    for it in range(1, 5):
        rec.add_losses(it, it / 2, 0.01, {"loss": 1.0 / it})
        if it % 2 == 0:
            rec.add_metrics({"epoch": it // 2, "iter": it, "sem/mIoU": 0.1 * it, "sem/aAcc": 0.5})
    rec.save_history()
    assert plot_tool.default_keys([seg]) == ["sem/mIoU", "loss"]
    (seg / "config.yaml").write_text("train: {best_metric: sem/aAcc}\n")
    assert plot_tool.default_keys([seg]) == ["sem/aAcc", "loss"]
    assert plot_tool.main([str(seg), "--out", str(tmp_path / "seg.png")]) == 0


def test_a_classifier_run_with_one_evaluation_is_drawn(tmp_path, monkeypatch):
    """Every evaluator's metric is a metric (cls/top1 included: marker, "(0..1)"); a one-point series shows
    its marker whatever its key, and a loss key with a '/' stays a loss."""
    import detkit.analysis.logs as logs
    from detkit.engine.logger import RunRecord

    runs = []
    for name, epochs in (("split", 2), ("trial_0", 1)):
        rec = RunRecord(tmp_path / name)
        (tmp_path / name).mkdir()
        for ep in range(1, epochs + 1):
            rec.add_losses(ep, float(ep), 0.01, {"loss": 1.0 / ep, "rpn/cls": 0.5 / ep})
            rec.add_metrics({"epoch": ep, "iter": ep, "cls/top1": 0.4 * ep, "cls/top5": 1.0})
        rec.save_history()
        runs.append(tmp_path / name)
    fig = logs.logs_figure(runs, ["cls/top1", "rpn/cls", "loss"])
    top1, rpn, loss = (ax for ax in fig.axes if ax.get_visible())
    assert top1.get_ylabel() == "cls/top1 (0..1)" and rpn.get_ylabel() == "rpn/cls" and loss.get_ylabel() == "loss"
    assert [line.get_marker() for line in top1.get_lines()] == ["o", "o"]
    assert [len(line.get_xdata()) for line in top1.get_lines()] == [2, 1]
    assert [line.get_marker() for line in loss.get_lines()] == ["None", "o"]  # trial_0's loss: one point
    assert logs.metric_keys(runs[0]) == {"cls/top1", "cls/top5"}
