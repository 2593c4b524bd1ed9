"""A dry prediction on a blank image, so that parts that do not fit together (a neck built for other channels or
levels than the backbone gives, a head for other channels than the neck gives) are reported when the model is
built, naming the part, instead of as a shape error deep in the first training step.

A part is judged not to fit only when it fails at its input: a first conv / linear layer that receives the part's
input (the previous part's output, or the first layer the part runs, as after a RoI head's pooling) and expects
other channels than it gets, or an error of the part's forward before any of its layers ran (its own input
checks, such as the number of levels). An error further inside a part, or in its post-processing, is an internal
error of that part (:class:`PartInternalError`), reported with its original message."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["ModelFitError", "PartInternalError", "check_parts_fit"]

logger = logging.getLogger("detkit")

PARTS = ("backbone", "neck", "rpn_head", "box_head", "mask_head", "head", "decode_head", "auxiliary_head")

_INPUT_LAYERS = (nn.modules.conv._ConvNd, nn.Linear)  # layers whose expected input channels are known


class ModelFitError(ValueError):
    """The parts of a model built from a config do not fit together; the message names the part and the keys."""


class PartInternalError(ValueError):
    """A part of a model failed inside itself (after its input layers took their input, or in its post-processing)
    on the blank probe image: no misfit between the parts; the message names the part and keeps the original.
    A ``ValueError`` like :class:`ModelFitError`: most such failures come from a config value (a class count, a
    layer size), so the tools report it as one line, exit 2."""


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


def _tensor_ids(obj: object, out: set[int]) -> set[int]:
    """The ids of the tensors in ``obj`` (nested lists, tuples and dicts)."""
    if isinstance(obj, Tensor):
        out.add(id(obj))
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            _tensor_ids(o, out)
    elif isinstance(obj, dict):
        for o in obj.values():
            _tensor_ids(o, out)
    return out


def _expected_channels(layer: nn.Module, x: Tensor) -> tuple[int, int] | None:
    """(channels ``layer`` expects, channels ``x`` has), or None where it cannot tell (lazy layers, odd inputs)."""
    if isinstance(layer, nn.Linear):
        return (int(layer.in_features), int(x.shape[-1])) if layer.in_features and x.dim() >= 1 else None
    n = len(layer.kernel_size)
    if not layer.in_channels or x.dim() not in (n + 1, n + 2):
        return None
    return int(layer.in_channels), int(x.shape[1] if x.dim() == n + 2 else x.shape[0])  # batched / unbatched


@dataclass
class _Probe:
    """What the hooks saw: the parts entered (in order), those running now, and channel misfits at input layers."""

    entered: list[str] = field(default_factory=list)
    active: list[str] = field(default_factory=list)
    inputs: dict[str, set[int]] = field(default_factory=dict)  # tensor ids a running part was given
    layers_run: dict[str, int] = field(default_factory=dict)  # conv / linear layers a running part has called
    misfits: list[tuple[str, str, int, int]] = field(default_factory=list)  # part, layer, expected, got

    def enter(self, part: str, args: tuple, kwargs: dict) -> None:
        self.entered.append(part)
        self.active.append(part)
        self.inputs[part] = _tensor_ids(kwargs, _tensor_ids(args, set()))
        self.layers_run[part] = 0

    def leave(self, part: str) -> None:
        if self.active and self.active[-1] == part:
            self.active.pop()

    def layer(self, part: str, name: str, layer: nn.Module, args: tuple) -> None:
        """A conv / linear layer of ``part`` called: check its channels when it takes the part's input."""
        if not self.active or self.active[-1] != part:
            return  # outside the part's forward (e.g. in its predict): not its input
        x = args[0] if args and isinstance(args[0], Tensor) else None
        takes_input = self.layers_run[part] == 0 or (x is not None and id(x) in self.inputs[part])
        self.layers_run[part] += 1
        if x is None or not takes_input:
            return
        channels = _expected_channels(layer, x)
        if channels is not None and channels[0] != channels[1]:
            self.misfits.append((part, name, *channels))


@contextlib.contextmanager
def _hooked(model: nn.Module) -> Iterator[_Probe]:
    """Hooks on the parts and on their conv / linear layers, removed on exit."""
    probe, hooks = _Probe(), []
    try:
        for p in PARTS:
            part = getattr(model, p, None)
            if not isinstance(part, nn.Module):
                continue
            hooks.append(part.register_forward_pre_hook(lambda _m, a, k, p=p: probe.enter(p, a, k), with_kwargs=True))
            hooks.append(part.register_forward_hook(lambda _m, _a, _o, p=p: probe.leave(p)))
            if p == "backbone":  # the image is its input: not judged
                continue
            for name, layer in part.named_modules():
                if isinstance(layer, _INPUT_LAYERS):
                    hooks.append(layer.register_forward_pre_hook(lambda m, a, p=p, n=name: probe.layer(p, n, m, a)))
        yield probe
    finally:
        for h in hooks:
            h.remove()


@contextlib.contextmanager
def _plain_modules(model: nn.Module) -> Iterator[None]:
    """The fused inference paths off (their functional convs bypass the layers' hooks), restored on exit."""
    fused = {m: m.fused_inference for m in model.modules() if hasattr(m, "fused_inference")}
    try:
        for m in fused:
            m.fused_inference = False
        yield
    finally:
        for m, flag in fused.items():
            m.fused_inference = flag


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def check_parts_fit(model: nn.Module, size: int = 64) -> None:
    """Run ``model.predict`` once on a blank ``size`` x ``size`` image in eval mode (no gradients, the model's mode
    and fused-inference flags restored).

    An error at a part's input after the backbone (a first conv / linear layer given other channels than it
    expects, or the part's own input checks before any of its layers ran) is a :class:`ModelFitError` naming that
    part and the keys to check. Any other error in a part after the backbone (inside its forward, or in its
    post-processing) is a :class:`PartInternalError` naming the part, with the original message. An error inside
    the backbone is not judged (a backbone of a fixed input size, such as a ViT, cannot run at ``size``; a
    backbone that cannot run at all fails in the first step anyway)."""
    from detkit.data.collate import collate
    from detkit.inference.runner import image_sample

    was_training = model.training
    device = next(model.parameters()).device
    batch = collate([image_sample(np.zeros((size, size, 3), np.uint8), 0)])
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    with _hooked(model) as probe, _plain_modules(model):
        try:
            model.eval()
            with torch.no_grad():
                model.predict(batch)
        except (RuntimeError, ValueError, TypeError, IndexError, AssertionError) as e:
            _judge(model, probe, e, size)
        finally:
            model.train(was_training)


def _judge(model: nn.Module, probe: _Probe, e: Exception, size: int) -> None:
    """Raise the error the probe's failure ``e`` means (or return where the backbone failed)."""
    inside = bool(probe.active)  # a part's forward was running when it failed
    part = probe.misfits[-1][0] if probe.misfits else (probe.active or probe.entered or [None])[-1]
    if part in (None, "backbone"):  # e.g. a ViT that takes 224x224 only: the parts' fit is not what failed
        logger.debug("check_parts_fit: the backbone does not run at %dx%d (%s); not checked", size, size, e)
        return
    if probe.misfits or (inside and probe.layers_run.get(part, 0) == 0):  # at its input layers, or before them
        raise ModelFitError(
            f"model.{part} does not fit the part before it (a prediction on a blank {size}x{size} image: "
            f"{_first_line(e)}); {_advice(model, part)}"
        ) from e
    where = (
        "inside its forward, after its input layers took what the part before it gives"
        if inside
        else "after its forward (in its post-processing)"
    )
    raise PartInternalError(
        f"model.{part} failed on a blank {size}x{size} image {where}: an internal error of the part, not a misfit "
        f"of the parts. {type(e).__name__}: {e}"
    ) from e
