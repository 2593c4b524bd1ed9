"""Loss bookkeeping of the training loop: a window of recent steps (log lines, history) and the epoch's means."""

from __future__ import annotations

import torch

from detkit.engine import dist


class LossMeter:
    """Collects each step's loss terms (and their sum, ``loss``) as floats.

    ``window_means`` are the means since the last :meth:`reduce_window`; that call averages them over the
    processes, adds them (weighted by the window's steps) to the epoch's sums, and starts a new window.
    """

    def __init__(self) -> None:
        self.window: dict[str, list[float]] = {}
        self.epoch: dict[str, tuple[float, int]] = {}

    def start_epoch(self) -> None:
        """Forget the window and the epoch's sums."""
        self.window, self.epoch = {}, {}

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        """One step's loss terms (finite ones: skipped steps are not added)."""
        for k, v in losses.items():
            self.window.setdefault(k, []).append(float(v.detach()))
        self.window.setdefault("loss", []).append(float(sum(v.detach() for v in losses.values())))

    def window_means(self) -> dict[str, float]:
        """Mean of each term over the current window (this process)."""
        return {k: sum(v) / len(v) for k, v in self.window.items() if v}

    def reduce_window(self, device: torch.device) -> dict[str, float]:
        """The window's means averaged over every process (a collective: every rank calls it)."""
        means = self.window_means()
        keys = sorted(means)
        vec = torch.tensor([means[k] for k in keys], dtype=torch.float64, device=device)
        reduced = dict(zip(keys, (dist.all_reduce_sum(vec).cpu() / dist.get_world_size()).tolist()))
        n = len(self.window.get("loss", []))  # the window's steps weight its means in the epoch's
        for k, v in reduced.items():
            total, count = self.epoch.get(k, (0.0, 0))
            self.epoch[k] = (total + v * n, count + n)
        self.window = {}
        return reduced

    def epoch_means(self) -> dict[str, float]:
        """Mean of each term over the epoch's reduced windows."""
        return {k: total / n for k, (total, n) in self.epoch.items() if n}
