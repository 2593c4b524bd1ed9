"""Exponential moving average of model weights with a ramped decay (as in YOLOv5/YOLOX)."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


class ModelEMA:
    """Keep ``ema = d * ema + (1 - d) * model`` with ``d = decay * (1 - exp(-updates / tau))``.

    The ramp makes early averages follow the model closely. Floating-point parameters and buffers are
    averaged; integer buffers (e.g. BN ``num_batches_tracked``) are copied.

    Args:
        model: the (unwrapped) model being trained; decay: final decay; tau: ramp length in updates.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9998, tau: float = 2000, updates: int = 0):
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.tau, self.updates = float(decay), float(tau), int(updates)

    def current_decay(self) -> float:
        """Decay used by the next update."""
        return self.decay * (1 - math.exp(-(self.updates + 1) / self.tau)) if self.tau > 0 else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average one step towards ``model``'s current weights."""
        d = self.current_decay()
        self.updates += 1
        src = model.state_dict()
        for k, v in self.module.state_dict().items():
            s = src[k].detach()
            if v.dtype.is_floating_point:
                v.mul_(d).add_(s.to(v.dtype), alpha=1 - d)
            else:
                v.copy_(s)

    def state_dict(self) -> dict:
        """``{"updates", "decay", "tau"}``; the averaged weights are saved as the checkpoint's ``model``."""
        return {"updates": self.updates, "decay": self.decay, "tau": self.tau}

    def load_state_dict(self, state: dict, weights: dict) -> None:
        """Restore the update count and the averaged ``weights``."""
        self.updates = int(state["updates"])
        self.module.load_state_dict(weights)
