"""Curves of one or several work directories' logs, for comparison.

A work directory holds ``metrics.jsonl`` (one JSON object per evaluation: ``epoch``, ``iter`` and metric
keys such as ``bbox/AP``) and ``history.json`` (the training series: ``iter``, ``epoch`` (fractional),
``lr`` and ``loss`` {name: values}, e.g. ``loss``, ``rpn/cls``); see ``detkit.engine.logger.RunRecord``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

from detkit.analysis.figures import pyplot, save_figure
from detkit.utils.files import read_jsonl

__all__ = ["available_keys", "load_series", "logs_figure", "metric_keys", "plot_logs"]


def load_series(work_dir: str | os.PathLike) -> dict[str, dict[str, list[float]]]:
    """Every series of a work directory: ``{key: {'epoch': [...], 'iter': [...], 'value': [...]}}``.

    Metric keys come from metrics.jsonl (-1, pycocotools' "undefined", is left out); loss keys and
    ``lr`` from history.json. Raises ``FileNotFoundError`` when the folder has neither file.
    """
    d = Path(work_dir)
    if not (d / "metrics.jsonl").is_file() and not (d / "history.json").is_file():
        raise FileNotFoundError(f"{d}: no metrics.jsonl or history.json; is it a detkit work directory?")
    out: dict[str, dict[str, list[float]]] = {}
    for row in read_jsonl(d / "metrics.jsonl"):
        for k, v in row.items():
            if k in ("epoch", "iter") or not isinstance(v, (int, float)) or v == -1:
                continue
            s = out.setdefault(k, {"epoch": [], "iter": [], "value": []})
            s["epoch"].append(float(row.get("epoch", math.nan)))
            s["iter"].append(float(row.get("iter", math.nan)))
            s["value"].append(float(v))
    if (d / "history.json").is_file():
        try:
            h = json.loads((d / "history.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{d / 'history.json'}: not valid JSON ({e})") from e
        series = {"lr": h.get("lr", []), **(h.get("loss") or {})}
        for k, values in series.items():
            out.setdefault(
                k,
                {
                    "epoch": list(map(float, h.get("epoch", []))),
                    "iter": list(map(float, h.get("iter", []))),
                    "value": [float(v) for v in values],
                },
            )
    return out


def metric_keys(work_dir: str | os.PathLike) -> set[str]:
    """The evaluator metric keys of a work directory: those of its metrics.jsonl (every evaluator's, e.g.
    ``bbox/AP``, ``cls/top1``, ``sem/mIoU``), never a loss key or ``lr`` (history.json's)."""
    path = Path(work_dir) / "metrics.jsonl"
    if not path.is_file():
        return set()
    return {k for row in read_jsonl(path) for k, v in row.items() if k not in ("epoch", "iter") and _number(v)}


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def available_keys(work_dirs: Sequence[str | os.PathLike]) -> list[str]:
    """Keys found in any of the work directories."""
    return sorted({k for d in work_dirs for k in load_series(d)})


def logs_figure(
    work_dirs: Sequence[str | os.PathLike],
    keys: Sequence[str],
    x: str = "epoch",
    labels: Sequence[str] | None = None,
):
    """The figure of ``plot_logs``: one axes per key (titled with it), one line per work directory (labelled).

    Raises ``ValueError`` for a key that no work directory has (naming the keys there are).
    """
    if x not in ("epoch", "iter"):
        raise ValueError(f"x must be 'epoch' or 'iter', got {x!r}")
    labels = list(labels) if labels else [Path(d).resolve().name or str(d) for d in work_dirs]
    if len(labels) != len(work_dirs):
        raise ValueError(f"{len(labels)} labels for {len(work_dirs)} work directories")
    runs = [load_series(d) for d in work_dirs]
    metrics = set().union(*(metric_keys(d) for d in work_dirs))
    missing = [k for k in keys if not any(k in r for r in runs)]
    if missing:
        raise ValueError(f"key(s) {missing} not found; available: {', '.join(available_keys(work_dirs))}")
    plt = pyplot()
    cols = min(len(keys), 2)
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4.2 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        is_metric = key in metrics  # an evaluator's (bbox/AP, cls/top1, sem/mIoU, ...): a fraction in 0..1
        for run, label in zip(runs, labels):
            s = run.get(key)
            if s is None:
                continue
            pts = [(a, v) for a, v in zip(s[x], s["value"]) if not (math.isnan(a) or math.isnan(v))]
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                marker="o" if is_metric or len(pts) == 1 else None,  # a single point is only its marker
                markersize=3,
                linewidth=1.4,
                label=label,
            )
        ax.set_title(key)
        ax.set_xlabel(x)
        ax.set_ylabel(f"{key} (0..1)" if is_metric else key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(keys) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def plot_logs(
    work_dirs: Sequence[str | os.PathLike],
    keys: Sequence[str],
    out: str | os.PathLike,
    x: str = "epoch",
    labels: Sequence[str] | None = None,
) -> Path:
    """Write :func:`logs_figure` to ``out``: one panel per key, one line per work directory; ``x`` is
    ``'epoch'`` or ``'iter'``. Raises ``ValueError`` for a key that no work directory has."""
    return save_figure(logs_figure(work_dirs, keys, x, labels), out)
