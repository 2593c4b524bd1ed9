"""A dry prediction on a blank image, so that parts that do not fit together (a neck built for other channels or
levels than the backbone gives, a head for other channels than the neck gives) are reported when the model is
built, naming the part, instead of as a shape error deep in the first training step."""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

__all__ = ["ModelFitError", "check_parts_fit"]

logger = logging.getLogger("detkit")

PARTS = ("backbone", "neck", "rpn_head", "box_head", "mask_head", "head", "decode_head", "auxiliary_head")


class ModelFitError(ValueError):
    """The parts of a model built from a config do not fit together; the message names the part and the keys."""


def _gives(part: nn.Module | None) -> str:
    """What a part hands on: its ``out_channels`` (and ``strides``) when it says."""
    channels, strides = getattr(part, "out_channels", None), getattr(part, "strides", None)
    if channels is None:
        return ""
    return f"{channels} channels" + (f" at strides {list(strides)}" if strides is not None else "")


def _advice(model: nn.Module, name: str) -> str:
    """Which keys to compare for part ``name``: the in_channels / levels of it against its input's."""
    before = [
        p for p in PARTS[: PARTS.index(name)] if getattr(model, p, None) is not None and p in ("backbone", "neck")
    ]
    source = before[-1] if before else None
    given = _gives(getattr(model, source, None)) if source else ""
    gives = f" (model.{source} gives {given})" if given else ""
    return (
        f"make model.{name}'s in_channels (and its per-level settings, such as anchor sizes or strides) match what "
        f"model.{source or 'backbone'} gives{gives}"
    )


def check_parts_fit(model: nn.Module, size: int = 64) -> None:
    """Run ``model.predict`` once on a blank ``size`` x ``size`` image in eval mode (no gradients, the model's mode
    restored); an error in a part after the backbone is a :class:`ModelFitError` naming that part and the keys to
    check. An error inside the backbone is not judged (a backbone of a fixed input size, such as a ViT, cannot
    run at ``size``; a backbone that cannot run at all fails in the first step anyway)."""
    from detkit.data.collate import collate
    from detkit.inference.runner import _sample

    entered: list[str] = []
    hooks = [
        getattr(model, p).register_forward_pre_hook(lambda _m, _a, p=p: entered.append(p))
        for p in PARTS
        if isinstance(getattr(model, p, None), nn.Module)
    ]
    was_training = model.training
    device = next(model.parameters()).device
    batch = collate([_sample(np.zeros((size, size, 3), np.uint8), 0)])
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    try:
        model.eval()
        with torch.no_grad():
            model.predict(batch)
    except (RuntimeError, ValueError, TypeError, IndexError, AssertionError) as e:
        part = entered[-1] if entered else None
        if part in (None, "backbone"):  # e.g. a ViT that takes 224x224 only: the parts' fit is not what failed
            logger.debug("check_parts_fit: the backbone does not run at %dx%d (%s); not checked", size, size, e)
            return
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelFitError(
            f"model.{part} does not fit the part before it (a prediction on a blank {size}x{size} image: {first}); "
            f"{_advice(model, part)}"
        ) from e
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
