"""Training curves as PNG files (matplotlib, headless): losses.png, lr.png, metrics.png."""

from __future__ import annotations

from pathlib import Path

METRIC_AXIS = "metric value (AP, AR, IoU, Acc in 0..1)"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def history_figures(history: dict, metrics: list[dict]) -> dict:
    """``{file name: matplotlib Figure}`` for the loss and LR curves of ``history`` (see RunRecord) and the
    metric curves of the ``metrics`` rows; a plot with no data is left out. The caller closes the figures."""
    plt = _pyplot()
    figures = {}
    its = history.get("iter", [])
    if its and history.get("loss"):
        fig, ax = plt.subplots(figsize=(8, 5))
        for k, v in sorted(history["loss"].items()):
            ax.plot(its, v, label=k, linewidth=2.0 if k == "loss" else 1.0)
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss")
        ax.set_yscale("log" if all(x > 0 for v in history["loss"].values() for x in v if x == x) else "linear")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        figures["losses.png"] = fig
    if its:
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.plot(its, history["lr"], label="lr")
        ax.set_xlabel("iteration")
        ax.set_ylabel("learning rate")
        ax.grid(alpha=0.3)
        figures["lr.png"] = fig
    keys = sorted(
        {k for r in metrics for k, v in r.items() if k not in ("epoch", "iter") and isinstance(v, (int, float))}
    )
    if metrics and keys:
        fig, ax = plt.subplots(figsize=(8, 5))
        for k in keys:
            pts = [(r["epoch"], r[k]) for r in metrics if k in r and r[k] >= 0]  # -1: undefined (COCO)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=k)
        ax.set_xlabel("epoch")
        ax.set_ylabel(METRIC_AXIS)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        figures["metrics.png"] = fig
    return figures


def plot_history(history: dict, metrics: list[dict], out_dir: str | Path) -> list[Path]:
    """Write the figures of :func:`history_figures` into ``out_dir``; return the PNG paths written."""
    plt = _pyplot()
    written = []
    for name, fig in history_figures(history, metrics).items():
        path = Path(out_dir) / name
        fig.tight_layout()
        tmp = path.with_name("." + path.name + ".tmp.png")
        fig.savefig(tmp, dpi=100)
        plt.close(fig)
        tmp.replace(path)
        written.append(path)
    return written
