"""Check an exported file against the PyTorch model with onnxruntime: matched detections, differences, mask IoU.

Tolerances fit float32 at the image's scale. onnxruntime and PyTorch sum in other orders, and a trained
network carries those last-bit differences through its layers, so a box coordinate of a correct export
differs by a relative ~1e-5 of the image size (0.003 px at 320 px, more on large images and trained
weights). A box therefore passes within ``atol + rtol * max(h, w)`` pixels of its image (default
1e-3 + 1e-4 * side: 0.033 px at 320 px, 0.13 px at 1333 px); scores within ``atol``. A detection whose
score is within ``atol`` of a cut (the score threshold, or the last kept score when an image is full)
may be kept on one side only: it is counted as ``borderline``, not as a failure. Likewise, where duplicates
of one object have near-tied scores (freshly trained weights), 1e-7 of rounding decides which one NMS keeps,
and the two sides may keep different ones: a PyTorch detection and an onnxruntime detection without a close
match, of the same label, overlapping (IoU >= ``NEAR_TIE_IOU``) with scores within ``NEAR_TIE_ATOL``, count
as ``near_tie`` when the onnxruntime box is one of PyTorch's own candidates before NMS (its dense outputs:
the same box within the box tolerance, the same class score within ``NEAR_TIE_ATOL``). A wrong export (boxes
moved, classes swapped, scores off) gives boxes and scores that no PyTorch candidate has, so it still fails.
Instance masks are compared as the models give them (bool, each image's size) by their IoU.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torchvision.ops import box_iou

from detkit.export.common import ExportError
from detkit.export.onnx import onnx_session, run_onnx
from detkit.export.verify_semantic import compare_semantic_predictions, semantic_passes, semantic_reference
from detkit.export.wrappers import get_export_module

__all__ = [
    "box_tolerance",
    "compare_class_predictions",
    "compare_predictions",
    "mask_ious",
    "match_detections",
    "passes",
    "verify_onnx",
]

# Near-tied duplicates that NMS may resolve either way: they overlap at least NEAR_TIE_IOU (the lowest NMS
# threshold of detkit's configs: R-CNN box heads 0.5, YOLO 0.7) and their scores differ by at most
# NEAR_TIE_ATOL (or --atol when smaller): 25x and more the largest float32 score difference measured between
# onnxruntime and PyTorch on YOLO exports (7e-8 to 4e-7), yet below the spread of an untrained model's class
# scores (1e-4), so that a wrong class order does not look like ties.
NEAR_TIE_IOU = 0.5
NEAR_TIE_ATOL = 1e-5


def box_tolerance(image_size: Sequence[int], atol: float = 1e-3, rtol: float = 1e-4) -> float:
    """Allowed box difference in pixels for an image of ``image_size`` (h, w): ``atol + rtol * max(h, w)``."""
    return float(atol) + float(rtol) * max(int(image_size[0]), int(image_size[1]))


def match_detections(ref: dict, other: dict, min_iou: float = 0.9) -> list[tuple[int, int]]:
    """Pairs (i, j) of one image's detections: same label, best IoU >= ``min_iou``, best ``ref`` score first."""
    if not len(ref["boxes"]) or not len(other["boxes"]):
        return []
    iou = box_iou(ref["boxes"].float(), other["boxes"].float())
    iou[ref["labels"][:, None] != other["labels"][None, :]] = -1
    used = torch.zeros(len(other["boxes"]), dtype=torch.bool)
    pairs = []
    for i in ref["scores"].argsort(descending=True).tolist():
        cand = iou[i].masked_fill(used, -1)
        j = int(cand.argmax())
        if cand[j] >= min_iou:
            used[j] = True
            pairs.append((i, j))
    return pairs


def mask_ious(a: Tensor, b: Tensor) -> Tensor:
    """IoU [N] of bool masks [N,H,W] pairwise by index (1 where both are empty)."""
    a, b = a.flatten(1).bool(), b.flatten(1).bool()
    inter, union = (a & b).sum(1).float(), (a | b).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def _is_borderline(score: float, kept_elsewhere: Tensor, score_thr, max_per_img, atol: float) -> bool:
    """A detection kept on one side only because its score sits (within ``atol``) at a cut of the other side."""
    near_thr = score_thr is not None and score - float(score_thr) <= atol
    full = max_per_img is not None and len(kept_elsewhere) >= int(max_per_img)
    return near_thr or (full and score <= float(kept_elsewhere.min()) + atol)


def _is_candidate(det: dict, j: int, cand: dict, tol: float, tie: float) -> bool:
    """Whether detection ``j`` of ``det`` is one of the dense candidates ``cand`` (``boxes`` [A,4], ``scores``
    [A,C]): a box within ``tol`` px whose score of the detection's class is within ``tie``."""
    close = (cand["boxes"].float() - det["boxes"][j].float()).abs().amax(1) <= tol
    score = cand["scores"][:, int(det["labels"][j])].float()
    return bool((close & ((score - float(det["scores"][j])).abs() <= tie)).any())


def _near_ties(ref: dict, other: dict, ref_idx: list, other_idx: list, cand: dict, tol: float, tie: float):
    """Pairs (i, j) of the detections ``ref_idx`` of ``ref`` (PyTorch) and ``other_idx`` of ``other`` that have
    no close match, where NMS kept another of near-tied duplicates: the same label, IoU >= ``NEAR_TIE_IOU``,
    scores within ``tie``, and ``other``'s detection j is one of PyTorch's own candidates before NMS ``cand``
    (:func:`_is_candidate`: the box that PyTorch's NMS suppressed, found in its dense outputs)."""
    pairs: list[tuple[int, int]] = []
    if not ref_idx or not other_idx:
        return pairs
    ri = torch.tensor(ref_idx, dtype=torch.int64)
    iou = box_iou(ref["boxes"][ri].float(), other["boxes"][other_idx].float())  # [I,J]
    free = torch.ones(len(ri), dtype=torch.bool)
    for b, j in sorted(enumerate(other_idx), key=lambda t: -float(other["scores"][t[1]])):
        tied = (ref["scores"][ri].float() - float(other["scores"][j])).abs() <= tie
        ok = free & tied & (ref["labels"][ri] == other["labels"][j]) & (iou[:, b] >= NEAR_TIE_IOU)
        if ok.any() and _is_candidate(other, j, cand, tol, tie):
            a = int(iou[:, b].masked_fill(~ok, -1).argmax())
            free[a] = False
            pairs.append((ref_idx[a], j))
    return pairs


def _compare_image(r: dict, o: dict, tol: float, atol: float, cand: dict | None, cuts: tuple, min_iou: float):
    """One image's stats (``matched``, ``near_tie``, ``borderline``, ``boxes_over_tol``, ``max_box_diff``,
    ``max_score_diff``) and the mask IoUs of its matched pairs (None without masks)."""
    pairs = match_detections(r, o, min_iou)
    ties = []
    if cand is not None and tol < float("inf"):  # the detections without a close match: lone or too far
        close = [(i, j) for i, j in pairs if float((r["boxes"][i] - o["boxes"][j]).abs().max()) <= tol]
        diff_r = sorted(set(range(len(r["boxes"]))) - {i for i, _ in close})
        diff_o = sorted(set(range(len(o["boxes"]))) - {j for _, j in close})
        ties = _near_ties(r, o, diff_r, diff_o, cand, tol, min(atol, NEAR_TIE_ATOL))
    tied_r, tied_o = {p[0] for p in ties}, {p[1] for p in ties}
    pairs = [(i, j) for i, j in pairs if i not in tied_r and j not in tied_o]
    ri, oi = (torch.tensor([p[n] for p in pairs], dtype=torch.int64) for n in (0, 1))
    box_diff = (r["boxes"][ri].float() - o["boxes"][oi].float()).abs().amax(1) if pairs else torch.zeros(0)
    score_diff = (r["scores"][ri].float() - o["scores"][oi].float()).abs() if pairs else torch.zeros(0)
    stats = dict(matched=len(pairs), near_tie=2 * len(ties), boxes_over_tol=int((box_diff > tol).sum()))
    stats.update(max_box_diff=float(box_diff.max()) if pairs else 0.0)
    stats.update(max_score_diff=float(score_diff.max()) if pairs else 0.0, borderline=0)
    for side, elsewhere, used in ((r, o, set(ri.tolist()) | tied_r), (o, r, set(oi.tolist()) | tied_o)):
        lone = [float(s) for n, s in enumerate(side["scores"]) if n not in used]
        stats["borderline"] += sum(_is_borderline(s, elsewhere["scores"], *cuts, atol) for s in lone)
    ious = mask_ious(r["masks"][ri], o["masks"][oi]) if pairs and "masks" in r and "masks" in o else None
    return stats, ious


def compare_predictions(
    ref: Sequence[dict],
    other: Sequence[dict],
    min_iou: float = 0.9,
    image_sizes: Sequence[Sequence[int]] | None = None,
    atol: float = 1e-3,
    rtol: float = 1e-4,
    score_thr: float | None = None,
    max_per_img: int | None = None,
    candidates: Sequence[dict] | None = None,
) -> dict[str, Any]:
    """Match detections per image (:func:`match_detections`) and measure the matched pairs.

    ``candidates``: per image PyTorch's dense outputs before NMS (``boxes`` [A,4], ``scores`` [A,C]); with them
    and ``image_sizes``, a detection without a close match whose NMS kept another of near-tied duplicates
    (:func:`_near_ties`) counts as ``near_tie``, and its pair is left out of the differences.

    Returns ``num_ref``, ``num_other``, ``matched``, ``unmatched`` (on either side), ``borderline`` (the
    unmatched ones at a score cut), ``near_tie`` (the unmatched ones of near-tied duplicates, both sides),
    ``max_box_diff`` (px), ``box_tol`` (the largest image's tolerance, px), ``boxes_over_tol`` (pairs beyond
    their image's :func:`box_tolerance`; only with ``image_sizes``), ``max_score_diff``, and with masks on
    both sides ``mask_pairs``, ``mean_mask_iou``, ``min_mask_iou``.
    """
    stats = dict(num_ref=0, num_other=0, matched=0, borderline=0, near_tie=0, max_box_diff=0.0, box_tol=0.0)
    stats.update(boxes_over_tol=0, max_score_diff=0.0)
    ious = []
    for k, (r, o) in enumerate(zip(ref, other)):
        tol = box_tolerance(image_sizes[k], atol, rtol) if image_sizes is not None else float("inf")
        cand = candidates[k] if candidates is not None else None
        image, mask_iou = _compare_image(r, o, tol, atol, cand, (score_thr, max_per_img), min_iou)
        stats["num_ref"] += len(r["boxes"])
        stats["num_other"] += len(o["boxes"])
        stats["box_tol"] = max(stats["box_tol"], tol if image_sizes is not None else 0.0)
        for key in ("matched", "near_tie", "borderline", "boxes_over_tol"):
            stats[key] += image[key]
        for key in ("max_box_diff", "max_score_diff"):
            stats[key] = max(stats[key], image[key])
        if mask_iou is not None:
            ious.append(mask_iou)
    stats["unmatched"] = stats["num_ref"] + stats["num_other"] - 2 * stats["matched"]
    if ious:
        ious = torch.cat(ious)
        stats.update(mask_pairs=len(ious), mean_mask_iou=float(ious.mean()), min_mask_iou=float(ious.min()))
    return stats


def _topk_agree(ref: Tensor, other: Tensor, scores: Tensor, atol: float) -> tuple[bool, bool]:
    """(equal, borderline) of two top-k label lists [k] of one image: ``borderline`` when they differ only where
    the reference probabilities ``scores`` [C] of the classes involved tie within ``atol`` (their order, or the
    k-th place, is float rounding)."""
    if torch.equal(ref, other):
        return True, False
    differ = ref != other
    involved = torch.cat([ref[differ], other[differ]])
    return False, bool(scores[involved].max() - scores[involved].min() <= atol)


def compare_class_predictions(ref: Sequence[dict], other: Sequence[dict], atol: float = 1e-3) -> dict[str, Any]:
    """Compare per-image class predictions (``scores`` [C] probabilities, ``labels`` [k]).

    Returns ``images``, ``topk_equal`` (images whose top-k labels are the same, in the same order),
    ``borderline`` (images whose top-k differ only between classes whose probabilities tie within ``atol``),
    ``top1_equal``, ``max_score_diff`` (largest probability difference over every class) and ``k``.
    """
    stats = dict(images=len(ref), topk_equal=0, borderline=0, top1_equal=0, max_score_diff=0.0, k=0)
    for r, o in zip(ref, other):
        rs, os_ = r["scores"].float().reshape(-1), o["scores"].float().reshape(-1)
        rl, ol = r["labels"].reshape(-1).long(), o["labels"].reshape(-1).long()
        stats["k"] = max(stats["k"], len(rl))
        stats["max_score_diff"] = max(stats["max_score_diff"], float((rs - os_).abs().max()) if len(rs) else 0.0)
        equal, borderline = _topk_agree(rl, ol, rs, atol) if len(rl) == len(ol) else (False, False)
        stats["topk_equal"] += int(equal)
        stats["borderline"] += int(borderline)
        stats["top1_equal"] += int(len(rl) > 0 and len(ol) > 0 and int(rl[0]) == int(ol[0]))
    return stats


def passes(stats: dict[str, Any], atol: float = 1e-3, mask_iou: float = 0.9) -> bool:
    """The verdict on :func:`compare_predictions`' stats: every detection matched, borderline or near-tie,
    every box within its image's tolerance, scores within ``atol``, every matched pair of masks at IoU >=
    ``mask_iou``; on :func:`compare_class_predictions`' stats: every image's top-k equal or borderline,
    probabilities within ``atol``; on ``compare_semantic_predictions``' stats: :func:`semantic_passes`."""
    if "labels_equal" in stats:
        return semantic_passes(stats)
    if "topk_equal" in stats:
        return stats["topk_equal"] + stats["borderline"] == stats["images"] and stats["max_score_diff"] <= atol
    return (
        stats["unmatched"] == stats["borderline"] + stats.get("near_tie", 0)
        and stats["boxes_over_tol"] == 0
        and stats["max_score_diff"] <= atol
        and stats.get("min_mask_iou", 1.0) >= mask_iou
    )


def verify_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    images: Sequence[np.ndarray | str | os.PathLike],
    atol: float = 1e-3,
    rtol: float = 1e-4,
    mask_iou: float = 0.9,
    batch_size: int = 2,
    pad_to: Sequence[int] | None = None,
    **module_kwargs: Any,
) -> dict[str, Any]:
    """Compare onnxruntime on ``images`` (RGB uint8 arrays of any sizes, or image file paths, read as
    ``detkit.predict`` reads them) with the PyTorch model's ``predict``.

    The images go through the config's test pipeline and ``collate`` in batches of ``batch_size``;
    PyTorch predictions are taken in network-input pixels (as the export gives them). ``ok`` is True when
    every detection is matched, ``borderline`` or ``near_tie``, boxes agree within :func:`box_tolerance`
    (``atol``, ``rtol``), scores within ``atol``, and every matched pair of masks has an IoU >= ``mask_iou``.
    Where the export has a dense form (YOLO's ``nms=False``), PyTorch's dense outputs are the candidates of
    :func:`compare_predictions` (near-tied duplicates that NMS kept differently). A classifier's export is
    compared by :func:`compare_class_predictions`: the same top-k classes in the same order, class
    probabilities within ``atol``; a semantic segmentor's by ``compare_semantic_predictions``: every pixel's
    label equal to ``predict``'s (or at logits tied within the tolerance), logits within ``atol + rtol * |logit|``.
    ``pad_to`` pads every batch to a static export's (h, w) (use ``batch_size`` 1 then).
    """
    from detkit.data.image_io import read_image

    images = [read_image(p) if isinstance(p, (str, os.PathLike)) else p for p in images]
    module = get_export_module(model, **module_kwargs)
    dense = _dense_module(model, module, module_kwargs)
    session = onnx_session(path)
    was_training = model.training
    model.eval()
    ref, got, sizes, cands = [], [], [], []
    try:
        for batch in _batches(model, images, batch_size, module.size_divisor, pad_to):
            with torch.no_grad():
                preds = model.predict(batch, **module.predict_kwargs)
            if module.kind == "semantic":  # predict's label maps and PyTorch's logits
                preds = semantic_reference(model, batch, preds)
            ref.extend({k: v.cpu() for k, v in p.items()} for p in preds)
            inputs = module.inputs_from_batch(batch)
            got.extend(module.outputs_to_predictions(run_onnx(session, inputs, module.input_names), inputs))
            sizes.extend(batch["image_sizes"])
            cands.extend(_dense_candidates(dense, inputs) if dense is not None else [])
    finally:
        model.train(was_training)
    if module.kind == "classification":
        stats = compare_class_predictions(ref, got, atol)
    elif module.kind == "semantic":
        stats = compare_semantic_predictions(ref, got, atol, rtol)
    else:
        stats = compare_predictions(
            ref,
            got,
            image_sizes=sizes,
            atol=atol,
            rtol=rtol,
            score_thr=module.score_thr,
            max_per_img=module.max_per_img,
            candidates=cands if dense is not None else None,
        )
    stats["ok"] = passes(stats, atol, mask_iou)
    stats["images"] = len(images)
    return stats


def _dense_module(model: nn.Module, module: nn.Module, module_kwargs: dict) -> nn.Module | None:
    """The export's dense form (the graph without NMS) in PyTorch, whose outputs are the candidates that NMS
    chooses from; None where the export has none (R-CNN: compared strictly)."""
    if "nms" not in getattr(module, "options", ()):
        return None
    return get_export_module(model, **{**module_kwargs, "nms": False})


def _dense_candidates(dense: nn.Module, inputs: Sequence[Tensor]) -> list[dict[str, Tensor]]:
    """PyTorch's candidates before NMS per image (``boxes`` [A,4], ``scores`` [A,C]) from the export's dense form."""
    device = next(dense.parameters()).device
    with torch.no_grad():
        boxes, scores = dense(*(t.to(device) for t in inputs))[:2]
    return [{"boxes": b.cpu(), "scores": s.cpu()} for b, s in zip(boxes, scores)]


def _batches(model: nn.Module, images: Sequence[np.ndarray], batch_size: int, size_divisor: int, pad_to):
    """``collate`` batches of ``images`` after the config's test pipeline, geometry in network-input pixels."""
    from detkit.data.collate import collate
    from detkit.inference.runner import build_test_pipeline

    pipeline = build_test_pipeline(getattr(model, "cfg", None))
    for start in range(0, len(images), batch_size):
        samples = [{"image": img, "image_id": start + j} for j, img in enumerate(images[start : start + batch_size])]
        samples = [pipeline(s) for s in samples] if pipeline is not None else samples
        batch = collate(samples, size_divisor=size_divisor)
        if pad_to is not None:
            batch = _pad_batch(batch, pad_to)
        batch["orig_sizes"] = batch["image_sizes"]  # compare in network-input pixels
        batch["scale_factors"] = [(1.0, 1.0)] * len(samples)
        batch["pad_offsets"] = [(0.0, 0.0)] * len(samples)
        yield batch


def _pad_batch(batch: dict, pad_to: Sequence[int]) -> dict:
    """Pad ``batch['images']`` (bottom/right, zeros) to a static export size (h, w)."""
    images = batch["images"]
    h, w = int(pad_to[0]), int(pad_to[1])
    if images.shape[-2] > h or images.shape[-1] > w:
        raise ExportError(
            f"a verify image is {tuple(images.shape[-2:])} after the test pipeline, larger than the "
            f"static export size {(h, w)}: export with a larger image size or with dynamic axes"
        )
    batch["images"] = torch.nn.functional.pad(images, (0, w - images.shape[-1], 0, h - images.shape[-2]))
    return batch
