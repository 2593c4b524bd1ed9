"""Functional COCO metrics through pycocotools (or, when asked for, the optional faster_coco_eval).

``coco_metrics`` / ``evaluate_coco`` score a COCO results list against a ground truth (``read_results`` and
``check_results`` read and check it, warning when its categories disagree with the ground truth's);
``per_class_ap`` and ``format_per_class`` give the per-category table (AP in 0..1); ``prediction_to_coco`` /
``masks_to_rle`` turn one image's prediction into COCO results records. ``detkit.evaluation.coco.CocoEvaluator``
and ``detkit.analysis`` build on them.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import os
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detkit.evaluation.coco_results import (
    _read_json,
    check_results,
    label_list,
    masks_to_rle,
    prediction_to_coco,
    read_results,
)
from detkit.evaluation.per_class_ap import (
    AP_UNITS,
    ClassAP,
    format_ap,
    format_per_class,
    max_det_index,
    mean_valid,
    per_class_ap,
)

__all__ = [
    "AP_UNITS",
    "IOU_TYPES",
    "STAT_NAMES",
    "ClassAP",
    "CocoEvalOutput",
    "accumulate_cocoeval",
    "check_gt",
    "check_results",
    "coco_metrics",
    "empty_results_coco",
    "evaluate_coco",
    "evaluate_coco_gt",
    "faster_coco_eval_available",
    "format_ap",
    "format_per_class",
    "label_list",
    "load_coco_gt",
    "masks_to_rle",
    "max_det_index",
    "mean_valid",
    "per_class_ap",
    "prediction_to_coco",
    "read_results",
    "resolve_backend",
]

IOU_TYPES = ("bbox", "segm")
# Names of pycocotools' 12 summary numbers (COCOeval.stats), in its order.
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


class CocoEvalOutput(NamedTuple):
    """What ``evaluate_coco`` returns: the metric dict, the COCOeval object and its captured output."""

    metrics: dict[str, float]
    cocoeval: Any
    log: str


def faster_coco_eval_available() -> bool:
    """True when the optional ``faster_coco_eval`` package can be imported."""
    return importlib.util.find_spec("faster_coco_eval") is not None


def resolve_backend(backend: str) -> str:
    """``'pycocotools'`` or ``'faster_coco_eval'`` for a backend argument (``'auto'`` is pycocotools)."""
    # 'auto' is pycocotools: faster_coco_eval's precisions omit pycocotools' eps in tp / (tp + fp + eps),
    # so its numbers differ in the last bit (<= 3e-16) and would change reported results when installed.
    if backend == "auto":
        return "pycocotools"
    if backend not in ("pycocotools", "faster_coco_eval"):
        raise ValueError(f"backend must be 'auto', 'pycocotools' or 'faster_coco_eval', got {backend!r}")
    if backend == "faster_coco_eval" and not faster_coco_eval_available():
        raise ImportError(
            "backend='faster_coco_eval' needs `pip install faster-coco-eval`; or use backend='pycocotools'"
        )
    return backend


def _coco_class(backend: str):
    if backend == "faster_coco_eval":
        from faster_coco_eval import COCO as FCOCO

        return FCOCO
    return COCO


NO_ANNOTATIONS_HINT = (
    " (COCO's image-info test files have none: a test-info file without annotations cannot be evaluated on; "
    "give the split's instances json)"
)


def check_gt(dataset: dict, iou_types: Sequence[str], source: str) -> None:
    """Raise ``ValueError`` naming ``source`` and the first annotation that lacks what COCOeval needs.

    ``dataset`` is a COCO dict; it needs ``images``, ``annotations`` and ``categories``, and every annotation
    ``area`` (COCOeval's size split), ``bbox`` for 'bbox' and ``segmentation`` for 'segm' in ``iou_types``.
    """
    for key in ("images", "annotations", "categories"):
        if not isinstance(dataset.get(key), list):
            hint = NO_ANNOTATIONS_HINT if key == "annotations" else ""
            raise ValueError(f"{source}: ground truth has no '{key}' list; it is not a COCO annotation file{hint}")
    need = ["area"] + (["bbox"] if "bbox" in iou_types else []) + (["segmentation"] if "segm" in iou_types else [])
    for ann in dataset["annotations"]:
        missing = [k for k in need if k not in ann]
        if missing:
            raise ValueError(
                f"{source}: annotation id={ann.get('id')} (image {ann.get('image_id')}) has no "
                f"{', '.join(missing)}; COCO evaluation needs them (area = mask or box area); "
                f"fix the file, e.g. check it with detkit check"
            )


def _copy_gt(data: dict, backend: str) -> dict:
    """Copy a COCO dict deeply enough for COCOeval: pycocotools replaces or adds keys of the annotation
    dicts (``segmentation`` -> RLE, ``ignore``) but never changes a value in place."""
    if backend != "pycocotools":
        return copy.deepcopy(data)
    out = dict(data)
    for key in ("images", "annotations", "categories"):
        if isinstance(data.get(key), list):
            out[key] = [dict(x) for x in data[key]]
    return out


def load_coco_gt(
    gt: str | os.PathLike | dict | Any, backend: str = "pycocotools", iou_types: str | Sequence[str] = ("bbox",)
) -> Any:
    """Return a private COCO object (of ``backend``'s class) built from a path, a dict or a COCO object.

    The result is always a copy: COCOeval rewrites ground-truth polygons into RLE in place, and the
    caller's object must not change. Its ``source`` attribute names the file (or 'the ground truth').
    """
    if isinstance(gt, (str, os.PathLike)):
        source = os.fspath(gt)
        data = _read_json(source, "ground-truth annotation file")
        if not isinstance(data, dict):
            raise ValueError(f"{source}: ground truth must be a COCO dict (images, annotations, categories)")
    elif isinstance(gt, dict):
        source, data = "ground-truth dict", _copy_gt(gt, backend)
    elif hasattr(gt, "dataset") and isinstance(gt.dataset, dict):
        source, data = getattr(gt, "source", "ground-truth COCO object"), _copy_gt(gt.dataset, backend)
    else:
        raise TypeError(f"ground truth must be a json path, a dict or a COCO object, got {type(gt).__name__}")
    iou_types = (iou_types,) if isinstance(iou_types, str) else tuple(iou_types)
    check_gt(data, iou_types, source)
    if "segm" in iou_types:  # stray 1-2 point polygon parts: left out, as CocoDataset trains (pycocotools: a box)
        from detkit.data.instance_masks import without_degenerate_parts

        data, _ = without_degenerate_parts(data)
    coco = _coco_class(backend)()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    coco.source = source
    return coco


def empty_results_coco(coco_gt: Any, backend: str = "pycocotools") -> Any:
    """A results COCO object with no detection (``loadRes`` refuses an empty list)."""
    res = _coco_class(backend)()
    res.dataset = {
        "images": list(coco_gt.dataset["images"]),
        "annotations": [],
        "categories": copy.deepcopy(coco_gt.dataset["categories"]),
    }
    with contextlib.redirect_stdout(io.StringIO()):
        res.createIndex()
    return res


def accumulate_cocoeval(
    coco_gt: Any,
    results: Sequence[dict],
    iou_type: str = "bbox",
    img_ids: Iterable[int] | None = None,
    backend: str = "pycocotools",
    iou_thrs: Sequence[float] | None = None,
    max_dets: int = 100,
) -> Any:
    """``COCOeval`` of checked ``results`` (not modified) after ``evaluate()`` and ``accumulate()``, no summary.

    pycocotools' prints are captured. ``img_ids`` restricts the images (default all), ``iou_thrs`` replaces
    the IoU thresholds (default 0.50:0.05:0.95), ``max_dets`` the detections per image that AP and the last AR
    count (COCO's 100; maxDets becomes ``[1, 10, max_dets]``).
    """
    dets = [dict(r) for r in results]  # loadRes writes ids and areas into the records
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(dets) if dets else empty_results_coco(coco_gt, backend)
        if backend == "faster_coco_eval":
            from faster_coco_eval import COCOeval_faster

            E = COCOeval_faster(coco_gt, coco_dt, iou_type, print_function=print)
        else:
            E = COCOeval(coco_gt, coco_dt, iou_type)
        if iou_thrs is not None:
            E.params.iouThrs = np.asarray(iou_thrs, dtype=np.float64)
        if max_dets != 100:  # kept sorted (evaluate() sorts them): under 10, AR10 becomes AR at max_dets too
            E.params.maxDets = [1, min(10, int(max_dets)), int(max_dets)]
        if img_ids is not None:
            ids = sorted({int(i) for i in img_ids})
            known = set(coco_gt.getImgIds())
            bad = [i for i in ids if i not in known]
            if bad:
                raise ValueError(f"image ids {bad[:10]} are not in the ground truth")
            if not ids:
                raise ValueError("img_ids is empty: there is no image to evaluate")
            E.params.imgIds = ids
        E.evaluate()
        E.accumulate()
    return E


def evaluate_coco(
    gt: str | os.PathLike | dict | Any,
    results: str | os.PathLike | Sequence[dict],
    iou_type: str = "bbox",
    img_ids: Iterable[int] | None = None,
    backend: str = "auto",
    verbose: bool = False,
    max_dets: int = 100,
) -> CocoEvalOutput:
    """Run COCOeval (evaluate, accumulate, summarize) with its stdout captured.

    Args:
        gt: ground-truth json path, COCO dict, or COCO object (never modified).
        results: COCO results json path or list of dicts (``image_id``, ``category_id``, ``score``,
            ``bbox`` xywh for bbox, ``segmentation`` RLE for segm).
        iou_type: ``'bbox'`` or ``'segm'``.
        img_ids: evaluate only these images (default: every image of the ground truth).
        backend: ``'auto'`` or ``'pycocotools'``: pycocotools; ``'faster_coco_eval'`` (optional package,
            several times faster on large sets) gives the same numbers to within 3e-16, not bit for bit.
        verbose: also print pycocotools' summary.
        max_dets: detections per image that AP (and AR100) count, highest scores first: COCO's 100; raise it
            for images with more objects (AP is capped below 1 where an image has more than ``max_dets``).
    Returns:
        ``CocoEvalOutput(metrics, cocoeval, log)``; metrics keys are ``f'{iou_type}/{name}'`` for the
        names of ``STAT_NAMES``, AP values in 0..1 (-1 where there is no ground truth).
    """
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
    backend = resolve_backend(backend)
    coco_gt = load_coco_gt(gt, backend, iou_type)
    return evaluate_coco_gt(coco_gt, results, iou_type, img_ids, backend, verbose, max_dets=max_dets)


def crowded_note(gt: dict, max_dets: int, image_ids: Iterable[int] | None = None) -> str | None:
    """A sentence when an image of ``gt`` (of ``image_ids``: default all) holds more non-crowd objects than the
    ``max_dets`` detections per image that AP counts (AP and AR are then capped below 1), else None."""
    keep = None if image_ids is None else set(image_ids)
    counts: dict = {}
    for a in gt.get("annotations", []):
        if not a.get("iscrowd", 0) and (keep is None or a.get("image_id") in keep):
            counts[a["image_id"]] = counts.get(a["image_id"], 0) + 1
    crowded = {i: n for i, n in counts.items() if n > max_dets}
    if not crowded:
        return None
    worst = max(crowded, key=crowded.get)
    return (
        f"{len(crowded)} evaluated image(s) hold more objects than the {max_dets} detections per image that AP "
        f"counts (pycocotools' maxDets; image id {worst}: {crowded[worst]} objects), so AP and AR are capped below "
        "1 (the model's own limit of detections per image, max_per_img, must allow as many)"
    )


def summarize_cocoeval(E: Any) -> str:
    """``E.summarize()`` (``E.stats``, pycocotools' 12 numbers) with its lines returned, not printed; with a last
    maxDets other than 100 (``max_dets``) AP and the last AR are taken at it and the lines say so."""
    last = int(E.params.maxDets[-1])
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        if last != 100:  # summarize() looks its AP's maxDets up by the value 100: name the last one so
            E.params.maxDets = [*E.params.maxDets[:-1], 100]
        try:
            E.summarize()
        finally:
            E.params.maxDets = [*E.params.maxDets[:-1], last]
    text = log.getvalue()
    return text if last == 100 else text.replace("maxDets=100", f"maxDets={last}")


def evaluate_coco_gt(
    coco_gt: Any,
    results: str | os.PathLike | Sequence[dict],
    iou_type: str = "bbox",
    img_ids: Iterable[int] | None = None,
    backend: str = "pycocotools",
    verbose: bool = False,
    max_dets: int = 100,
) -> CocoEvalOutput:
    """``evaluate_coco`` on a private ground-truth COCO object of ``backend``'s class (from ``load_coco_gt``)."""
    dets, source = read_results(results)
    dets = check_results(dets, iou_type, coco_gt, source)
    if not dets:
        warnings.warn(
            f"no {iou_type} detections to evaluate: every AP is 0 (-1 where there is no ground truth)", stacklevel=3
        )
    E = accumulate_cocoeval(coco_gt, dets, iou_type, img_ids, backend, max_dets=max_dets)
    text = summarize_cocoeval(E)
    if verbose:
        print(text, end="")
    metrics = {f"{iou_type}/{n}": float(v) for n, v in zip(STAT_NAMES, E.stats)}
    return CocoEvalOutput(metrics, E, text)


def coco_metrics(
    gt_json: str | os.PathLike | dict | Any,
    results: str | os.PathLike | Sequence[dict],
    iou_type: str = "bbox",
    backend: str = "auto",
    img_ids: Iterable[int] | None = None,
    verbose: bool = False,
    max_dets: int = 100,
) -> dict[str, float]:
    """Return pycocotools' COCO metrics (``bbox/AP``, ``bbox/AP50``, ... in 0..1, -1 = undefined).

    See ``evaluate_coco`` for the arguments; this returns only the metric dict.
    """
    return evaluate_coco(gt_json, results, iou_type, img_ids, backend, verbose, max_dets=max_dets).metrics
