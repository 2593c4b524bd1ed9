"""Training plots: the figures hold the right axes and series, and the PNG files are written."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt

from detkit.engine.plots import METRIC_AXIS, history_figures, plot_history

HISTORY = {
    "iter": [2, 4, 6],
    "epoch": [0.5, 1.0, 1.5],
    "lr": [0.01, 0.02, 0.002],
    "loss": {"loss": [3.0, 2.0, 1.5], "cls": [2.0, 1.2, 1.0], "box": [1.0, 0.8, math.nan]},
}
METRICS = [{"epoch": 1, "iter": 4, "bbox/AP": 0.25, "bbox/APs": -1.0}, {"epoch": 2, "iter": 8, "bbox/AP": 0.5}]


def _series(ax) -> dict:
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}


def test_figures_hold_the_history_and_metrics():
    figs = history_figures(HISTORY, METRICS)
    try:
        assert set(figs) == {"losses.png", "lr.png", "metrics.png"}
        ax = figs["losses.png"].axes[0]
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("iteration", "loss")
        series = _series(ax)
        assert series["loss"] == ([2, 4, 6], [3.0, 2.0, 1.5]) and series["cls"][1] == [2.0, 1.2, 1.0]
        assert math.isnan(series["box"][1][2]) and ax.get_yscale() == "log"  # positive losses: log scale
        ax = figs["lr.png"].axes[0]
        assert ax.get_ylabel() == "learning rate" and _series(ax)["lr"] == ([2, 4, 6], [0.01, 0.02, 0.002])
        ax = figs["metrics.png"].axes[0]
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("epoch", METRIC_AXIS) and "0..1" in METRIC_AXIS
        series = _series(ax)
        assert series["bbox/AP"] == ([1, 2], [0.25, 0.5]) and series["bbox/APs"] == ([], [])  # -1: not drawn
    finally:
        for fig in figs.values():
            plt.close(fig)


def test_negative_loss_uses_a_linear_axis_and_empty_history_draws_nothing(tmp_path):
    figs = history_figures({**HISTORY, "loss": {"loss": [1.0, -0.5, 0.2]}}, [])
    try:
        assert set(figs) == {"losses.png", "lr.png"} and figs["losses.png"].axes[0].get_yscale() == "linear"
    finally:
        for fig in figs.values():
            plt.close(fig)
    assert plot_history({"iter": [], "lr": [], "loss": {}}, [], tmp_path) == []


def test_plot_history_writes_pngs(tmp_path):
    written = plot_history(HISTORY, METRICS, tmp_path)
    assert [p.name for p in written] == ["losses.png", "lr.png", "metrics.png"]
    for p in written:
        assert p.read_bytes()[:4] == b"\x89PNG"
        assert p.stat().st_size > 5_000  # a drawn figure, not an empty canvas
    assert not list(tmp_path.glob(".*tmp*"))


def test_fit_plots_what_it_recorded(toy, tmp_path):
    from detkit.engine import Trainer

    tr = Trainer(toy.toy_config(max_epochs=1, log_interval=1), work_dir=tmp_path, device="cpu")
    tr.fit()
    figs = history_figures(tr.record.history, tr.record.metrics())
    try:
        assert _series(figs["losses.png"].axes[0])["loss"][0] == [1, 2, 3, 4]
        assert _series(figs["metrics.png"].axes[0])["bbox/AP"][0] == [1]
    finally:
        for fig in figs.values():
            plt.close(fig)
