"""ONNX export of detkit models, and running the exported files with onnxruntime (checks: ``verify.py``).

A model exports through the wrapper that ``detkit.export.wrappers`` registers for its type: an
``nn.Module`` whose ``forward`` takes and returns tensors only (``detkit.export.common`` describes it).

The exporter is torch's TorchScript-based one (``dynamo=False``): torchvision registers ONNX symbolics
for ``nms`` and ``roi_align`` there, and tracing keeps the batch and image sizes dynamic where the
wrapper computes sizes with tensor ops. (The torch.export-based exporter needs onnxscript and has no
translation for the data-dependent sizes that NMS gives.)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from detkit.export.common import ExportError
from detkit.export.metadata import export_metadata, min_opset, task_of
from detkit.export.shapes import declared_output_shapes, write_output_shapes
from detkit.export.wrappers import get_export_module

__all__ = ["export_onnx", "onnx_session", "run_onnx"]


def export_onnx(
    model: nn.Module,
    out: str | os.PathLike,
    image_size: Sequence[int] = (320, 320),
    batch_size: int = 1,
    opset: int = 17,
    dynamic: bool = True,
    **module_kwargs: Any,
) -> Path:
    """Export ``model`` to an ONNX file (written atomically) and check it with ``onnx.checker``.

    Args:
        image_size: (h, w) of the example input used for tracing (padded to the size divisor).
        batch_size: batch of the example input.
        opset: ONNX opset version.
        dynamic: batch and image size dynamic (the wrapper's ``dynamic_axes``); False fixes them.
        module_kwargs: options of the model's export wrapper (e.g. ``max_per_img``, ``nms``).

    The graph declares each output's shape: the wrapper's ``dynamic_axes`` names for the axes that follow the
    input (batch, height, width, anchors), fixed sizes for the others (:mod:`detkit.export.shapes`).

    Raises:
        ExportError: ``opset`` below what the model needs (instance masks: 12), an operator that torch
            cannot write at ``opset``, an ``image_size`` that the graph cannot be written at (a segmentor's
            adaptive pooling), or ``dynamic`` for a model whose graph cannot keep the image size dynamic (a
            segmentor's sliding windows, adaptive pooling, or sizes fixed while tracing).
    """
    import onnx
    from torch.onnx.errors import UnsupportedOperatorError

    module = get_export_module(model, **module_kwargs).cpu()
    least = min_opset(module)
    if opset < least:
        raise ExportError(
            f"opset {opset}: a {type(model).__name__} with instance masks ({task_of(model, module)}) needs opset "
            f"{least} or more (opset 11 cannot express its mask steps); give --opset {least} or more (default 17)"
        )
    blocker = module.dynamic_unsupported() if dynamic and hasattr(module, "dynamic_unsupported") else None
    if blocker:
        raise ExportError(
            f"{type(model).__name__} cannot keep the image size dynamic in ONNX: {blocker}; export it at a fixed "
            "size: add --static (with --image-size H,W; in Python export_onnx(..., dynamic=False))"
        )
    example = module.example_inputs(batch_size, image_size)
    problem = module.size_unsupported(example) if hasattr(module, "size_unsupported") else None
    if problem:
        size = "x".join(str(int(v)) for v in example[0].shape[-2:])
        raise ExportError(f"{type(model).__name__} cannot be written to ONNX at {size}: {problem}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        _trace(module, example, tmp, opset, dynamic)
    except UnsupportedOperatorError as e:
        tmp.unlink(missing_ok=True)
        op = str(e).split("'")[1] if str(e).count("'") >= 2 else "an operator"
        raise ExportError(
            f"opset {opset} cannot express {op} of {type(model).__name__}: give a higher --opset (default 17)"
        ) from None
    proto = onnx.load(os.fspath(tmp))
    write_output_shapes(proto, declared_output_shapes(module, example, dynamic))
    _store_class_names(proto, getattr(model, "class_names", None), getattr(model, "cat_ids", None))
    for key, value in export_metadata(model, module).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, os.fspath(tmp))
    os.replace(tmp, out)
    return out


def _trace(module: nn.Module, example: tuple, tmp: Path, opset: int, dynamic: bool) -> None:
    """torch's TorchScript exporter on ``module`` with the ``example`` inputs, into ``tmp``."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.script inside torchvision's nms
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*aten::index operator of advanced indexing.*")
        torch.onnx.export(
            module,
            example,
            os.fspath(tmp),
            dynamo=False,
            opset_version=opset,
            input_names=module.input_names,
            output_names=module.output_names,
            dynamic_axes=module.dynamic_axes if dynamic else None,
            do_constant_folding=True,
        )


def _store_class_names(proto: Any, class_names: Sequence[str] | None, cat_ids: Sequence[int] | None = None) -> None:
    """Put the model's class names into the ONNX model's metadata (key ``class_names``, a JSON list in label
    order), so that a runtime maps the ``labels`` outputs to names without the checkpoint; with the dataset's
    category ids (``model.cat_ids``, one per name) also ``category_ids`` (label -> id, for COCO results)."""
    import json

    if class_names:
        entry = proto.metadata_props.add()
        entry.key, entry.value = "class_names", json.dumps([str(n) for n in class_names], ensure_ascii=False)
    if class_names and cat_ids is not None and len(cat_ids) == len(class_names):
        entry = proto.metadata_props.add()
        entry.key, entry.value = "category_ids", json.dumps([int(i) for i in cat_ids])


def onnx_session(path: str | os.PathLike, providers: Sequence[str] | None = None):
    """An onnxruntime ``InferenceSession`` of an exported file (CPU unless ``providers`` say otherwise)."""
    import onnxruntime as ort

    return ort.InferenceSession(os.fspath(path), providers=list(providers or ["CPUExecutionProvider"]))


def run_onnx(
    path: str | os.PathLike | Any,
    inputs: Sequence[torch.Tensor | np.ndarray],
    input_names: Sequence[str] | None = None,
    providers: Sequence[str] | None = None,
) -> list[np.ndarray]:
    """Run an exported file (or an :func:`onnx_session`) with onnxruntime on ``inputs``."""
    sess = path if hasattr(path, "run") else onnx_session(path, providers)
    names = input_names or [i.name for i in sess.get_inputs()]
    feed = {n: (x.cpu().numpy() if torch.is_tensor(x) else np.asarray(x)) for n, x in zip(names, inputs)}
    return sess.run(None, feed)
