"""Normalisation layers by name, shared by necks and heads (the ResNet backbone keeps torchvision's own)."""

from __future__ import annotations

from torch import nn

__all__ = ["build_norm"]


def build_norm(norm: str | None, channels: int, gn_groups: int = 32, owner: str = "norm") -> nn.Module:
    """``None``/'' (Identity), ``BN``, ``SyncBN`` or ``GN`` over ``channels``.

    GN uses ``gn_groups`` groups, or the largest smaller count that divides ``channels`` (a 16-channel
    test model gets 16). ``owner`` names the config key in the error for an unknown name.
    """
    if not norm:
        return nn.Identity()
    if norm == "BN":
        return nn.BatchNorm2d(channels)
    if norm == "SyncBN":
        return nn.SyncBatchNorm(channels)
    if norm == "GN":
        groups = next(g for g in range(min(gn_groups, channels), 0, -1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    raise ValueError(f"{owner} must be None, 'BN', 'SyncBN' or 'GN', got {norm!r}")
