"""The search's plots as PNG files, drawn by ``optuna.visualization.matplotlib`` (headless):

``history.png`` (the metric of each trial and the running best), ``slices.png`` (the metric against each
parameter), and with two or more parameters ``importance.png`` (Optuna's parameter importances) and
``parallel.png`` (parallel coordinates).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

from optuna.trial import TrialState

from detkit.utils.files import atomic_write


def _figure(drawn):
    """The figure of what an Optuna plot returned (one Axes, or an array of them)."""
    ax = drawn.flat[0] if hasattr(drawn, "flat") else drawn
    return ax.figure


def plot_makers(study, keys: list[str], metric: str) -> dict[str, tuple[Callable, tuple[float, float]]]:
    """``{file name: (function drawing it, figure size in inches)}`` for this study's searched ``keys``."""
    from optuna.visualization import matplotlib as vm

    n = len(keys)
    makers = {
        "history.png": (lambda: vm.plot_optimization_history(study, target_name=metric), (8.0, 5.0)),
        "slices.png": (lambda: vm.plot_slice(study, params=keys, target_name=metric), (1.5 + 4.5 * n, 4.5)),
    }
    if n >= 2:
        makers["importance.png"] = (
            lambda: vm.plot_param_importances(study, params=keys, target_name=metric),
            (8.0, 2.0 + 0.5 * n),
        )
        makers["parallel.png"] = (
            lambda: vm.plot_parallel_coordinate(study, params=keys, target_name=metric),
            (3.0 + 2.5 * n, 5.0),
        )
    return makers


def write_plots(study, keys: list[str], metric: str, out_dir: Path) -> tuple[list[Path], list[str]]:
    """Draw the plots into ``out_dir``; returns the files written and a note for each plot that could not be
    drawn (a plot never fails the search)."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return [], ["no plots: no trial has completed"]
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    written, notes = [], []
    for name, (draw, size) in plot_makers(study, keys, metric).items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna's ExperimentalWarning, matplotlib's layout notes
                fig = _figure(draw())
                fig.set_size_inches(*size)
                path = Path(out_dir) / name
                atomic_write(path, lambda f, fig=fig: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
            plt.close(fig)
            written.append(path)
        except Exception as e:  # noqa: BLE001
            notes.append(f"{name} not drawn ({type(e).__name__}: {str(e).strip()[:160]})")
    return written, notes
