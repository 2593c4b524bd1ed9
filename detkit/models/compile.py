"""``torch.compile`` for detkit models: the dense parts compiled in place, the data-dependent parts eager.

:func:`compile_model` calls :meth:`torch.nn.Module.compile` on the parts whose ``forward`` is a fixed
network of convolutions (backbone, neck, the dense heads' ``forward``). Compiling a submodule in place,
rather than wrapping the model in ``torch.compile(model)``, keeps every parameter name (no ``_orig_mod.``
prefix), so checkpoints load both ways, ``ModelEMA`` (its ``deepcopy`` drops the compiled call, as
``nn.Module.__getstate__`` does) and a ``DistributedDataParallel`` wrap made afterwards work unchanged.

Left eager, because their shapes depend on the data: the RPN's proposal selection and loss
(``rpn_head.predict`` / ``loss``, methods outside ``forward``), the RoI box and mask heads (RoIAlign over a
per-image number of proposals), every head's ``loss`` / ``predict`` (assignment, NMS).

Compilation happens on a part's first call (and again for a new input shape, grad mode or train / eval
mode). When it fails there, the part warns once, naming itself and the error, and runs eager from then on;
without the C++ compiler that inductor needs (``$CXX`` or ``g++``) nothing is compiled and one warning says
so. Numerics against eager: docs/benchmarks.md ("Compiled models").
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from collections.abc import Callable, Sequence

from torch import nn

# parts whose forward is a fixed network, in the order a detector runs them (absent or None parts are skipped)
DENSE_PARTS = ("backbone", "neck", "head", "rpn_head", "decode_head", "auxiliary_head")


def cpp_compiler() -> str | None:
    """Path of the C++ compiler inductor would use (``$CXX``, else g++; clang++ on macOS), or None."""
    default = "cl" if sys.platform == "win32" else "clang++" if sys.platform == "darwin" else "g++"
    return shutil.which(os.environ.get("CXX") or default)


class EagerFallback:
    """A part's compiled call that falls back to eager (with one warning) when compiling it fails.

    On an exception from the compiled call the part runs eager: if eager succeeds the failure was the
    compiler's, so the part warns once and stays eager (``module._compiled_call_impl`` reset, which is where
    :meth:`torch.nn.Module.compile` keeps the compiled call); if eager fails too, eager's error is raised (a
    mistake of the input, not of the compiler) and the part stays compiled.
    """

    def __init__(self, name: str, module: nn.Module, compiled: Callable):
        self.name, self.compiled = name, compiled
        self.eager = module._call_impl

    def __call__(self, *args, **kwargs):
        try:
            return self.compiled(*args, **kwargs)
        except Exception as compile_error:  # noqa: BLE001 - any compiler failure: eager decides below
            try:
                out = self.eager(*args, **kwargs)
            except Exception as input_error:  # noqa: BLE001 - eager fails too: the input's error, as eager gives it
                raise input_error from None
            self.eager.__self__._compiled_call_impl = None
            warnings.warn(
                f"compile_model: {self.name} could not be compiled ({root_cause(compile_error)}); it runs eager",
                RuntimeWarning,
                stacklevel=2,
            )
            return out


def root_cause(error: BaseException) -> str:
    """``Type: first line`` of the innermost exception under ``error`` (torch.compile wraps a backend's error in
    its own, as ``inner_exception`` or ``__cause__``)."""
    while (inner := getattr(error, "inner_exception", None) or error.__cause__) is not None:
        error = inner
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def _unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel / DataParallel wrapper (its ``module``), else ``model``."""
    return model.module if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else model


def compile_model(
    model: nn.Module,
    mode: str | None = None,
    backend: str | Callable = "inductor",
    parts: Sequence[str] | None = None,
    dynamic: bool | None = None,
    options: dict | None = None,
    freeze: bool = False,
) -> nn.Module:
    """Compile the dense parts of ``model`` in place with ``torch.compile``; returns ``model``.

    Args:
        model: any detkit model (detector, segmentor, classifier), or a DDP wrap of one (its ``module``).
        mode: ``torch.compile``'s mode (None / "default", "reduce-overhead", "max-autotune", ...).
        backend: ``torch.compile``'s backend ("inductor"; "aot_eager" / "eager" to check tracing only).
        parts: attribute names to compile (default: those of :data:`DENSE_PARTS` the model has).
        dynamic, options: passed to ``torch.compile`` (``options`` are inductor settings).
        freeze: for inference with fixed weights only (tools/infer.py, tools/eval.py): inductor's ``freezing``
            bakes the weights in as constants at the first call (BN folded, conv weights pre-packed), so later
            changes of the weights are not seen. The model's own fast path (``optimize_for_inference``) is
            turned off: inductor folds and picks layouts itself. Ignored under autograd (training).

    :func:`compiled_parts` lists the parts that run compiled. State dict keys, parameters and buffers are
    unchanged.
    """
    inner = _unwrap(model)
    names = list(parts) if parts is not None else [n for n in DENSE_PARTS if getattr(inner, n, None) is not None]
    for name in names:
        if not isinstance(getattr(inner, name, None), nn.Module):
            raise ValueError(f"compile_model: {type(inner).__name__} has no part '{name}' to compile")
    if backend == "inductor" and names and cpp_compiler() is None:
        warnings.warn(
            f"compile_model: no C++ compiler found (inductor needs {os.environ.get('CXX') or 'g++'}; install "
            f"it or set CXX); {', '.join(names)} run eager",
            RuntimeWarning,
            stacklevel=2,
        )
        return model
    if freeze:
        options = {**(options or {}), "freezing": True}
        if hasattr(inner, "optimize_for_inference"):
            inner.optimize_for_inference(False)
    kwargs = {"mode": mode, "dynamic": dynamic, "options": options}
    for name in names:
        part = getattr(inner, name)
        part.compile(backend=backend, **{k: v for k, v in kwargs.items() if v is not None})
        part._compiled_call_impl = EagerFallback(name, part, part._compiled_call_impl)
    return model


def compiled_parts(model: nn.Module) -> tuple[str, ...]:
    """Names of ``model``'s parts that run compiled (not those that fell back to eager, nor a deepcopy's)."""
    inner = _unwrap(model)
    return tuple(n for n, m in inner.named_children() if isinstance(m._compiled_call_impl, EagerFallback))


def decompile_model(model: nn.Module) -> nn.Module:
    """Undo :func:`compile_model`: every part runs eager again; returns ``model``."""
    for name in compiled_parts(model):
        _unwrap(model).get_submodule(name)._compiled_call_impl = None
    return model
