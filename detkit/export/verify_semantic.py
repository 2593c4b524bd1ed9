"""Check a semantic segmentation export: per-pixel labels and logits of onnxruntime against PyTorch.

Both sides are compared in network-input pixels, each image's ``[:h, :w]``. Logits pass within
``atol + rtol * |logit|`` of PyTorch's (numpy's ``allclose`` rule: a trained model's logits reach tens, and
the two runtimes differ in their last bits, relative to the value). A pixel whose label differs passes as
``borderline`` when PyTorch's logits of the two classes tie within that tolerance (float rounding decides
the argmax there); any other differing pixel fails the export.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["compare_semantic_predictions", "semantic_passes", "semantic_reference"]


def semantic_reference(model: nn.Module, batch: dict, preds: list[dict[str, Tensor]]) -> list[dict[str, Tensor]]:
    """``model.predict``'s per-image ``sem_seg`` [h,w] plus PyTorch's ``logits`` float [C,h,w] (``inference``
    of the preprocessed batch, each image's ``[:h, :w]``), on the CPU."""
    with torch.no_grad():
        logits = model.inference(model.preprocess(batch)).float()  # [B,C,H,W]
    sizes = [tuple(int(v) for v in s) for s in batch["image_sizes"]]
    return [
        {"sem_seg": p["sem_seg"].cpu(), "logits": logits[i, :, :h, :w].cpu()}
        for i, (p, (h, w)) in enumerate(zip(preds, sizes))
    ]


def _tied(logits: Tensor, a: Tensor, b: Tensor, atol: float, rtol: float) -> Tensor:
    """bool [N]: at pixels where labels ``a`` and ``b`` (int64 [N]) differ, whether the logits [C,N] of the two
    classes tie within ``atol + rtol * |logit|``."""
    la = logits.gather(0, a[None])[0]
    lb = logits.gather(0, b.clamp(0, logits.shape[0] - 1)[None])[0]
    return ((la - lb).abs() <= atol + rtol * torch.maximum(la.abs(), lb.abs())) & (b >= 0) & (b < logits.shape[0])


def compare_semantic_predictions(
    ref: Sequence[dict], other: Sequence[dict], atol: float = 1e-3, rtol: float = 1e-4
) -> dict[str, Any]:
    """Compare per-image ``sem_seg`` int64 [h,w] (and ``logits`` float [C,h,w] where both sides have them).

    Returns ``images``, ``pixels``, ``labels_equal`` (pixels with the same label), ``borderline`` (differing
    pixels where PyTorch's logits of the two labels tie within ``atol + rtol * |logit|``), ``label_agreement``
    (``labels_equal / pixels``), ``max_logit_diff``, ``logits_over_tol`` (logits beyond that tolerance) and
    ``shape_mismatch`` (images whose label maps differ in size: every pixel counted as different).
    """
    stats = dict(images=len(ref), pixels=0, labels_equal=0, borderline=0, max_logit_diff=0.0, logits_over_tol=0)
    stats["shape_mismatch"] = 0
    for r, o in zip(ref, other):
        rl, ol = r["sem_seg"].long(), o["sem_seg"].long()
        stats["pixels"] += rl.numel()
        if rl.shape != ol.shape:
            stats["shape_mismatch"] += 1
            continue
        same = rl == ol
        stats["labels_equal"] += int(same.sum())
        if "logits" not in r or "logits" not in o:
            continue
        ref_logits = r["logits"].float()
        if ref_logits.shape != o["logits"].shape:
            stats["shape_mismatch"] += 1
            continue
        diff = (ref_logits - o["logits"].float()).abs()
        stats["max_logit_diff"] = max(stats["max_logit_diff"], float(diff.max()) if diff.numel() else 0.0)
        stats["logits_over_tol"] += int((diff > atol + rtol * ref_logits.abs()).sum())
        differ = ~same.reshape(-1)
        if differ.any():
            flat = ref_logits.reshape(ref_logits.shape[0], -1)[:, differ]  # [C,N]
            tied = _tied(flat, rl.reshape(-1)[differ], ol.reshape(-1)[differ], atol, rtol)
            stats["borderline"] += int(tied.sum())
    stats["label_agreement"] = stats["labels_equal"] / stats["pixels"] if stats["pixels"] else 1.0
    return stats


def semantic_passes(stats: dict[str, Any]) -> bool:
    """The verdict on :func:`compare_semantic_predictions`' stats: every pixel's label equal or borderline,
    every logit within its tolerance, the same sizes."""
    return (
        stats["shape_mismatch"] == 0
        and stats["labels_equal"] + stats["borderline"] == stats["pixels"]
        and stats["logits_over_tol"] == 0
    )
