"""ONNX export of detkit models and its verification with onnxruntime.

A model exports through the wrapper that its ``export_module()`` returns: an ``nn.Module`` whose
``forward`` takes and returns tensors only, with ``input_names``, ``output_names``, ``dynamic_axes``,
``example_inputs(batch_size, image_size)``, ``inputs_from_batch(batch)`` and
``outputs_to_predictions(outputs)``. ``TwoStageDetector`` provides one (``detkit.export.two_stage``);
another detector adds its own the same way and ``export_onnx`` needs no change.

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
from torchvision.ops import box_iou

__all__ = ["compare_predictions", "export_onnx", "get_export_module", "run_onnx", "verify_onnx"]


def get_export_module(model: nn.Module, **kwargs: Any) -> nn.Module:
    """The model's tensor-only export wrapper (``model.export_module(**kwargs)``), in eval mode."""
    fn = getattr(model, "export_module", None)
    if not callable(fn):
        raise TypeError(
            f"{type(model).__name__} cannot be exported: it has no export_module() method "
            "returning a tensor-only nn.Module (see detkit/export/onnx.py)"
        )
    return fn(**kwargs).eval()


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
        module_kwargs: passed to ``model.export_module`` (e.g. ``max_per_img``).
    """
    import onnx

    module = get_export_module(model, **module_kwargs).cpu()
    example = module.example_inputs(batch_size, image_size)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
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
    onnx.checker.check_model(os.fspath(tmp))
    os.replace(tmp, out)
    return out


def run_onnx(
    path: str | os.PathLike,
    inputs: Sequence[torch.Tensor | np.ndarray],
    input_names: Sequence[str] | None = None,
    providers: Sequence[str] | None = None,
) -> list[np.ndarray]:
    """Run an exported file with onnxruntime (CPU unless ``providers`` say otherwise)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(os.fspath(path), providers=list(providers or ["CPUExecutionProvider"]))
    names = input_names or [i.name for i in sess.get_inputs()]
    feed = {n: (x.cpu().numpy() if torch.is_tensor(x) else np.asarray(x)) for n, x in zip(names, inputs)}
    return sess.run(None, feed)


def compare_predictions(ref: Sequence[dict], other: Sequence[dict], min_iou: float = 0.9) -> dict[str, Any]:
    """Match detections per image (same label, best IoU >= ``min_iou``, best score first) and measure them.

    Returns ``num_ref``, ``num_other``, ``matched``, ``max_box_diff`` (pixels) and ``max_score_diff`` over
    the matched pairs.
    """
    stats = {"num_ref": 0, "num_other": 0, "matched": 0, "max_box_diff": 0.0, "max_score_diff": 0.0}
    for r, o in zip(ref, other):
        stats["num_ref"] += len(r["boxes"])
        stats["num_other"] += len(o["boxes"])
        if not len(r["boxes"]) or not len(o["boxes"]):
            continue
        iou = box_iou(r["boxes"].float(), o["boxes"].float())
        iou[r["labels"][:, None] != o["labels"][None, :]] = -1
        used = torch.zeros(len(o["boxes"]), dtype=torch.bool)
        for i in r["scores"].argsort(descending=True).tolist():
            cand = iou[i].masked_fill(used, -1)
            j = int(cand.argmax())
            if cand[j] < min_iou:
                continue
            used[j] = True
            stats["matched"] += 1
            stats["max_box_diff"] = max(stats["max_box_diff"], float((r["boxes"][i] - o["boxes"][j]).abs().max()))
            stats["max_score_diff"] = max(stats["max_score_diff"], float((r["scores"][i] - o["scores"][j]).abs()))
    return stats


def _pad_batch(batch: dict, pad_to: Sequence[int]) -> dict:
    """Pad ``batch['images']`` (bottom/right, zeros) to a static export size (h, w)."""
    images = batch["images"]
    h, w = int(pad_to[0]), int(pad_to[1])
    if images.shape[-2] > h or images.shape[-1] > w:
        raise ValueError(
            f"a verify image is {tuple(images.shape[-2:])} after the test pipeline, larger than the "
            f"static export size {(h, w)}: export with a larger image size or with dynamic axes"
        )
    batch["images"] = torch.nn.functional.pad(images, (0, w - images.shape[-1], 0, h - images.shape[-2]))
    return batch


def verify_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    images: Sequence[np.ndarray],
    atol: float = 1e-3,
    batch_size: int = 2,
    pad_to: Sequence[int] | None = None,
    **module_kwargs: Any,
) -> dict[str, Any]:
    """Compare onnxruntime on ``images`` (RGB uint8, any sizes) with the PyTorch model's ``predict``.

    The images go through the config's test pipeline and ``collate`` in batches of ``batch_size``;
    PyTorch predictions are taken in network-input pixels (as the export gives them). ``ok`` is True when
    both sides give the same number of detections, every one is matched, and boxes and scores agree
    within ``atol``. ``pad_to`` pads every batch to a static export's (h, w) (use ``batch_size`` 1 then).
    """
    from detkit.data.collate import collate
    from detkit.inference.runner import build_test_pipeline

    module = get_export_module(model, **module_kwargs)
    max_per_img = getattr(module, "max_per_img", None)
    pipeline = build_test_pipeline(getattr(model, "cfg", None))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    ref, got = [], []
    try:
        for start in range(0, len(images), batch_size):
            samples = [
                {"image": img, "image_id": start + j} for j, img in enumerate(images[start : start + batch_size])
            ]
            samples = [pipeline(s) for s in samples] if pipeline is not None else samples
            batch = collate(samples, size_divisor=getattr(module, "size_divisor", 32))
            if pad_to is not None:
                batch = _pad_batch(batch, pad_to)
            batch["orig_sizes"] = batch["image_sizes"]  # compare in network-input pixels
            batch["scale_factors"] = [(1.0, 1.0)] * len(samples)
            batch["pad_offsets"] = [(0.0, 0.0)] * len(samples)
            with torch.no_grad():
                for p in model.predict(batch):
                    order = p["scores"].argsort(descending=True)[:max_per_img]  # the export keeps the top max_per_img
                    ref.append({k: p[k][order].cpu() for k in ("boxes", "scores", "labels")})
            got.extend(
                module.outputs_to_predictions(run_onnx(path, module.inputs_from_batch(batch), module.input_names))
            )
    finally:
        model.train(was_training)
        model.to(device)
    stats = compare_predictions(ref, got)
    stats["ok"] = (
        stats["num_ref"] == stats["num_other"] == stats["matched"]
        and stats["max_box_diff"] <= atol
        and stats["max_score_diff"] <= atol
    )
    stats["images"] = len(images)
    return stats
