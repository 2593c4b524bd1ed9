"""Backbone weights from a file (``init_checkpoint``): a detkit checkpoint of any model, or a plain state dict.

A detkit checkpoint (``{"model": state dict, "meta": {...}}``, e.g. the ``best.pth`` of a ``Classifier``
trained with ``tools/train.py``) gives its ``backbone.*`` tensors; the rest (the classification head, a
neck, detection heads) is dropped and counted. So a backbone pre-trained as a classifier on the user's own
images initialises a Faster R-CNN, YOLO or segmentation model of the same backbone. What was taken, dropped,
missing and unexpected is logged (``detkit`` logger) and kept as the backbone's ``init_report``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from detkit.utils.checkpoint import CheckpointMismatchError, read_torch_file

__all__ = [
    "InitReport",
    "init_backbone",
    "is_detkit_checkpoint",
    "load_backbone_weights",
    "read_backbone_state",
    "without_init_checkpoint",
]

logger = logging.getLogger("detkit")
WHAT = "model.backbone.init_checkpoint"


@dataclass
class InitReport:
    """What ``init_checkpoint`` did: ``loaded`` keys (backbone names), ``missing`` (kept at their initial
    values), ``unexpected`` (in the file, not in the backbone: ignored), ``dropped`` (tensors of a detkit
    checkpoint outside ``backbone.*``, e.g. ``head.fc.weight``) and where they came from (``source``)."""

    path: str
    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: counts and the first few names of each group."""

        def some(keys: list[str]) -> str:
            return "" if not keys else " (" + ", ".join(keys[:4]) + (", ..." if len(keys) > 4 else "") + ")"

        return (
            f"{WHAT}: {len(self.loaded)} tensors loaded from {self.source} {self.path}; "
            f"{len(self.dropped)} outside the backbone dropped{some(self.dropped)}; "
            f"{len(self.missing)} missing, kept at their initial values{some(self.missing)}; "
            f"{len(self.unexpected)} unexpected, ignored{some(self.unexpected)}"
        )


def is_detkit_checkpoint(obj: Any) -> bool:
    """A checkpoint written by detkit: a dict with a ``model`` state dict and a ``meta`` dict."""
    return isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping) and isinstance(obj.get("meta"), Mapping)


def _stored_backbone_type(meta: Mapping) -> tuple[str | None, str | None]:
    """(model type, backbone type) of the config a detkit checkpoint stores (None where unknown)."""
    model = (meta.get("config") or {}).get("model") or {}
    backbone = model.get("backbone") if isinstance(model, Mapping) else None
    return model.get("type"), backbone.get("type") if isinstance(backbone, Mapping) else None


def read_backbone_state(path: str | os.PathLike, backbone_type: str) -> tuple[Any, InitReport | None]:
    """Read ``path`` (every failure a ``CheckpointError`` naming ``model.backbone.init_checkpoint``).

    A detkit checkpoint gives ``({name without 'backbone.': tensor}, report)`` after checking that its stored
    backbone type is ``backbone_type``; anything else is returned as read, with no report (the backbone
    unwraps its own foreign layouts, e.g. a torchvision state dict).
    """
    ckpt = read_torch_file(path, what=WHAT)
    if not is_detkit_checkpoint(ckpt):
        return ckpt, None
    model_type, stored = _stored_backbone_type(ckpt["meta"])
    if stored is not None and stored != backbone_type:
        raise CheckpointMismatchError(
            f"{WHAT} {path} is a {model_type or 'detkit'} checkpoint with a {stored} backbone, not a {backbone_type}; "
            f"give a checkpoint whose model.backbone is the same type (and size) as this one"
        )
    state = {k: v for k, v in ckpt["model"].items() if isinstance(v, Tensor)}
    taken = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    if not taken:
        raise CheckpointMismatchError(
            f"{WHAT} {path} is a detkit checkpoint without backbone.* tensors (first keys: "
            f"{', '.join(list(state)[:3])}); give the checkpoint of a model with a backbone (e.g. a Classifier's best.pth)"
        )
    epoch = ckpt["meta"].get("epoch")
    source = f"the {model_type or 'detkit'} checkpoint" + (f" (epoch {epoch})" if epoch is not None else "")
    report = InitReport(str(path), source, dropped=sorted(k for k in state if not k.startswith("backbone.")))
    return taken, report


def load_backbone_weights(
    module: nn.Module, state: Mapping[str, Tensor], path: str | os.PathLike, report: InitReport | None = None
) -> InitReport:
    """Load ``state`` into ``module`` (not strictly), log what was loaded and return the :class:`InitReport`.

    A tensor of another shape than the backbone's, or a file none of whose tensors fits, is a
    ``CheckpointMismatchError`` naming the file, the tensors and the fix.
    """
    name = type(module).__name__
    own = module.state_dict()
    bad = [k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        shown = "; ".join(f"{k}: file {tuple(state[k].shape)} vs {name} {tuple(own[k].shape)}" for k in bad[:4])
        raise CheckpointMismatchError(
            f"{WHAT} {path} does not fit this {name} ({len(bad)} tensors of another shape: {shown}); give the "
            "checkpoint of a backbone of the same size (e.g. the same scale or depth)"
        )
    if not any(k in own for k in state):
        raise CheckpointMismatchError(
            f"{WHAT} {path}: none of its {len(state)} tensors is a {name} tensor (file: "
            f"{', '.join(list(state)[:3]) or 'none'}; {name}: {', '.join(list(own)[:3])}); give a detkit checkpoint "
            "of a model with this backbone (its backbone.* tensors are taken) or a state dict of the backbone"
        )
    missing, unexpected = module.load_state_dict(dict(state), strict=False)
    report = report or InitReport(str(path), "the state dict")
    report.loaded = [k for k in state if k in own]
    report.missing, report.unexpected = list(missing), list(unexpected)
    (logger.warning if report.missing else logger.info)("%s", report.summary())
    return report


def init_backbone(module: nn.Module, path: str | os.PathLike) -> InitReport:
    """``init_checkpoint`` of a backbone whose state dict has no foreign layout to unwrap: a detkit checkpoint
    (its ``backbone.*``) or the backbone's own state dict (plain, or under ``model`` / ``state_dict``)."""
    state, report = read_backbone_state(path, type(module).__name__)
    if report is None and isinstance(state, Mapping):
        inner = next((state[k] for k in ("model", "state_dict") if isinstance(state.get(k), Mapping)), state)
        state = {k: v for k, v in inner.items() if isinstance(v, Tensor)}
    if not isinstance(state, Mapping) or not state:
        raise CheckpointMismatchError(f"{WHAT} {path} holds no state dict (a dict of tensors); give a checkpoint")
    return load_backbone_weights(module, state, path, report)


def without_init_checkpoint(cfg: Mapping[str, Any]) -> dict:
    """A copy of a config (or of its ``model`` section) with ``model.backbone.init_checkpoint`` removed: for a
    model whose weights come from its own checkpoint next, so that the start weights are not read again (the
    file may have moved since training). The original is not modified."""
    import copy

    out = copy.deepcopy(dict(cfg))
    model = out.get("model", out) if isinstance(out.get("model"), dict) else out
    backbone = model.get("backbone")
    if isinstance(backbone, dict):
        backbone.pop("init_checkpoint", None)
    return out
