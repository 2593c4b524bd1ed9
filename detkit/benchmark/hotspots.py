"""A/B measurements of YOLO's hot spots: each change against the code it replaced, interleaved in one process.

``tools/benchmark.py CONFIG --task hotspots`` (docs/benchmarks.md, "Compiled models and YOLO hot spots"):

- ``c2f``: the model's forward under ``torch.inference_mode`` with every C2f writing its parts into one
  tensor (:meth:`detkit.models.blocks.C2f.concat_in_place`, B) against chunk + cat (A, what autograd and
  ``torch.compile`` still run); the check is the largest output difference.
- ``assign``: :func:`detkit.ops.tal.task_aligned_assign` (B) against :func:`reference_assign` (A, the assigner
  as it was before: a [B,G,A,4] stack for the inside test, one-hot [B,A,C] int64 targets multiplied twice);
  both on the head's real predictions for ``batch`` images with a few boxes each; the check is that all
  outputs are equal.
- ``decode``: :meth:`detkit.models.heads.yolo.YOLOHead.decode` (B, the softmax over bins in the [B,4,R,A]
  layout, one matmul with the arange) against :func:`reference_decode` (A, softmax over the last dim of the
  strided [B,A,4,R] view, then the matmul); one image's predictions; the check is the largest box difference.
- ``select@T``: :meth:`~detkit.models.heads.yolo.YOLOHead.select` at score threshold T (B: only each image's
  ``nms_pre`` best candidates sorted, :func:`detkit.ops.batched.sorted_top_per_image`; NMS stops once
  ``max_per_img`` are kept, :func:`detkit.ops.batched.nms_first`) against the same with every candidate
  sorted and NMS over all of them (A); one image whose head is biased as ``detkit.benchmark.yolo.ultralytics_pair`` biases it
  (about 1% of anchor x class pairs above 0.25, boxes of a few strides); the check is that the detections
  are equal.
"""

from __future__ import annotations

import copy
import types
from unittest import mock

import torch
from torch import Tensor, nn
from torchvision.ops import nms

from detkit.benchmark.harness import RunSettings, measure, resolve_device, result_row
from detkit.benchmark.inputs import synthetic_targets
from detkit.benchmark.yolo import randomize_bn_stats
from detkit.models.blocks import C2f
from detkit.models.build import build_model
from detkit.ops import batched
from detkit.ops.points import distance_to_boxes
from detkit.ops.tal import Assignment, pair_ciou, select_positives, task_aligned_assign


@torch.no_grad()
def reference_assign(*args: Tensor, topk: int = 10, alpha: float = 0.5, beta: float = 6.0) -> Assignment:
    """The task-aligned assigner before issue 19: ``task_aligned_assign``'s six tensors and results."""
    pred_scores, pred_boxes, points, gt_labels, gt_boxes, gt_valid = args
    num_anchors, num_classes = pred_scores.shape[1:]
    if gt_boxes.shape[1] == 0:
        return task_aligned_assign(*args)
    gt_labels = gt_labels.long().clamp(0, num_classes - 1)
    x, y, b = points[:, 0], points[:, 1], gt_boxes[..., None, :]
    inside = torch.stack([x - b[..., 0], y - b[..., 1], b[..., 2] - x, b[..., 3] - y], -1).amin(-1) > 1e-9
    candidates = inside & gt_valid[..., None]  # [B,G,A]
    overlaps = pair_ciou(gt_boxes.float(), pred_boxes.float(), candidates)
    cls_scores = pred_scores.float().gather(2, gt_labels[:, None, :].expand(-1, num_anchors, -1))
    align = cls_scores.transpose(1, 2).pow(alpha) * overlaps.pow(beta) * candidates
    pos = select_positives(align, overlaps, candidates, topk)
    fg = pos.any(1)
    gt_index = pos.to(torch.uint8).argmax(1)
    labels = gt_labels.gather(1, gt_index)
    boxes = gt_boxes.gather(1, gt_index[..., None].expand(-1, -1, 4))
    align = align * pos
    norm = (align * (overlaps * pos).amax(-1, keepdim=True) / (align.amax(-1, keepdim=True) + 1e-9)).amax(1)
    return Assignment(labels, boxes, (norm * fg).to(pred_scores.dtype), fg, gt_index, num_classes)


def assignments_equal(a: Assignment, b: Assignment) -> bool:
    """Whether two assignments are equal in every field (bit for bit)."""
    return all(
        torch.equal(getattr(a, f), getattr(b, f)) for f in ("labels", "boxes", "score", "scores", "fg", "gt_index")
    )


def chunk_cat_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose C2f blocks always run chunk + cat (the code before ``concat_in_place``)."""
    ref = copy.deepcopy(model)
    for m in ref.modules():
        if isinstance(m, C2f):
            m.forward = types.MethodType(C2f.forward_chunk_cat, m)
    return ref


def _scale(cfg: dict) -> str:
    return f"yolo_{cfg['model'].get('backbone', {}).get('scale', 'n')}"


def bench_c2f(cfg: dict, size: int, settings: RunSettings) -> dict:
    """``c2f`` row: the fused inference forward at ``size``^2 with C2f in place (detkit) vs chunk + cat (peer)."""
    dev = resolve_device(settings.device)
    new = build_model(cfg).to(dev).eval().optimize_for_inference()
    old = chunk_cat_copy(new)
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1)).to(dev)

    def run(model):
        def call():
            with torch.inference_mode():
                return model.forward_raw(x)

        return call

    times, mem = measure({"detkit": run(new), "chunk_cat": run(old)}, settings, dev)
    diff = max(float((a - b).abs().max()) for a, b in zip(_flat(run(new)()), _flat(run(old)())))
    check = f"max output difference {diff:.2g}"
    settings.log(f"  check: {check}")
    return result_row("c2f", _scale(cfg), dev, f"1x3x{size}x{size}", times, mem, check)


def _flat(out) -> list[Tensor]:
    if isinstance(out, Tensor):
        return [out]
    return [t for o in out for t in _flat(o)]


def bench_assign(cfg: dict, size: int, batch: int, settings: RunSettings) -> dict:
    """``assign`` row: the assigner on the head's predictions for ``batch`` images of ``size``^2 (no timing of
    the network), new (detkit) vs :func:`reference_assign` (peer)."""
    from detkit.models.heads.yolo import pad_targets

    dev = resolve_device(settings.device)
    model = build_model(cfg).to(dev).eval()
    head = getattr(model.head, "det", model.head)  # YOLOSegHead keeps its YOLOHead as ``det``
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(1)).to(dev)
    with torch.no_grad():
        raw = model.forward_raw(images)
        raw = raw[0] if isinstance(raw, tuple) else raw
        bins, logits, points, strides = head.flatten(raw)
        boxes = head.decode(bins, points, strides)
    targets = synthetic_targets(batch, size, num_classes=model.num_classes)
    args = (logits.float().sigmoid(), boxes, points, *pad_targets(targets, dev))
    times, mem = measure(
        {
            "detkit": lambda: task_aligned_assign(*args, **head.assigner),
            "reference": lambda: reference_assign(*args, **head.assigner),
        },
        settings,
        dev,
    )
    same = assignments_equal(task_aligned_assign(*args, **head.assigner), reference_assign(*args, **head.assigner))
    check = f"outputs equal: {same}; anchors {points.shape[0]}, classes {logits.shape[-1]}"
    settings.log(f"  check: {check}")
    return result_row("assign", _scale(cfg), dev, f"{batch}x{size}x{size}", times, mem, check)


def reference_decode(head: nn.Module, bins: Tensor, points: Tensor, strides: Tensor) -> Tensor:
    """``YOLOHead.decode`` before issue 19: softmax over the last dim of the [B,A,4,R] view, then the matmul."""
    b, a, _ = bins.shape
    dist = bins.float().view(b, a, 4, head.reg_max).softmax(-1) @ head.proj  # [B,A,4]
    return distance_to_boxes(points / strides, dist) * strides


def biased_model(cfg: dict, dev: torch.device) -> nn.Module:
    """The fused model of ``cfg`` with random BatchNorm statistics and the head biased as ``ultralytics_pair``
    biases YOLOv8's: class logits at -1.3, box bins falling by 0.5 per bin (a realistic number of candidates
    and box sizes)."""
    torch.manual_seed(0)
    model = randomize_bn_stats(build_model(cfg)).to(dev).eval()
    head = getattr(model.head, "det", model.head)
    with torch.no_grad():
        for box, cls in zip(head.box_branch, head.cls_branch):
            cls[-1].bias.fill_(-1.3)
            box[-1].bias.copy_((-0.5 * torch.arange(head.reg_max, dtype=torch.float32)).repeat(4))
    return model.optimize_for_inference()


def _one_image_raw(cfg: dict, size: int, dev: torch.device) -> tuple[nn.Module, list[Tensor]]:
    model = biased_model(cfg, dev)
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1)).to(dev)
    with torch.inference_mode():
        raw = model.forward_raw(x)
    return getattr(model.head, "det", model.head), raw[0] if isinstance(raw, tuple) else raw


def bench_decode(cfg: dict, size: int, settings: RunSettings) -> dict:
    """``decode`` row: DFL decoding of one image's predictions, new (detkit) vs :func:`reference_decode`."""
    dev = resolve_device(settings.device)
    head, raw = _one_image_raw(cfg, size, dev)
    with torch.inference_mode():
        bins, _, points, strides = head.flatten(raw)
    fns = {
        "detkit": lambda: head.decode(bins, points, strides),
        "reference": lambda: reference_decode(head, bins, points, strides),
    }
    with torch.inference_mode():
        times, mem = measure(fns, settings, dev)
        diff = float((fns["detkit"]() - fns["reference"]()).abs().max())
    check = f"max box difference {diff:.2g} px; anchors {points.shape[0]}"
    settings.log(f"  check: {check}")
    return result_row("decode", _scale(cfg), dev, f"1x3x{size}x{size}", times, mem, check)


def _select_before(head: nn.Module, *args, **kwargs):
    """``head.select`` as before issue 19's second round: every candidate sorted, NMS over all of them."""
    full_sort = lambda scores, image_idx, num_images, k: scores.argsort(descending=True, stable=True)  # noqa: E731
    full_nms = lambda boxes, scores, thr, max_keep=None: nms(boxes, scores, thr)  # noqa: E731
    with (
        mock.patch.object(batched, "sorted_top_per_image", full_sort),
        mock.patch.object(batched, "nms_first", full_nms),
    ):
        return head.select(*args, **kwargs)


def bench_select(cfg: dict, size: int, score_thr: float, settings: RunSettings) -> dict:
    """``select@T`` row: one image's detections at score threshold T, new (detkit) or as before."""
    dev = resolve_device(settings.device)
    head, raw = _one_image_raw(cfg, size, dev)
    sizes = torch.tensor([[size, size]], device=dev)
    with torch.inference_mode():
        boxes, scores = head.dense(raw, sizes)
    fns = {
        "detkit": lambda: head.select(boxes, scores, sizes, score_thr),
        "before": lambda: _select_before(head, boxes, scores, sizes, score_thr),
    }
    with torch.inference_mode():
        times, mem = measure(fns, settings, dev)
        (new, n_new), (old, n_old) = fns["detkit"](), fns["before"]()
    same = torch.equal(n_new, n_old) and all(torch.equal(new[k], old[k]) for k in new)
    check = f"detections equal: {same} ({int(n_new.sum())}); candidates {int((scores > score_thr).sum())}"
    settings.log(f"  check: {check}")
    return result_row(f"select@{score_thr:g}", _scale(cfg), dev, f"1x3x{size}x{size}", times, mem, check)


def bench_hotspots(cfg: dict, size: int, batch: int, settings: RunSettings | None = None) -> list[dict]:
    """The ``c2f``, ``assign``, ``decode`` and ``select@0.25`` / ``select@0.001`` rows of a YOLO config."""
    settings = settings or RunSettings()
    if "YOLO" not in str(cfg["model"].get("head", {}).get("type", "")):
        raise ValueError("--task hotspots needs a YOLO config, e.g. configs/yolo/yolo_n_coco.yaml")
    return [
        bench_c2f(cfg, size, settings),
        bench_assign(cfg, size, batch, settings),
        bench_decode(cfg, size, settings),
        *(bench_select(cfg, size, thr, settings) for thr in (0.25, 0.001)),
    ]
