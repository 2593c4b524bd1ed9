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
import json
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detkit.evaluation import checks

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


class ClassAP(NamedTuple):
    """One row of the per-class table; AP values are -1 for a class without ground truth."""

    name: str
    category_id: int
    AP: float
    AP50: float
    num_gt: int


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


def check_gt(dataset: dict, iou_types: Sequence[str], source: str) -> None:
    """Raise ``ValueError`` naming ``source`` and the first annotation that lacks what COCOeval needs.

    ``dataset`` is a COCO dict; it needs ``images``, ``annotations`` and ``categories``, and every annotation
    ``area`` (COCOeval's size split), ``bbox`` for 'bbox' and ``segmentation`` for 'segm' in ``iou_types``.
    """
    for key in ("images", "annotations", "categories"):
        if key not in dataset:
            raise ValueError(f"{source}: ground truth has no '{key}' list; it is not a COCO annotation file")
    need = ["area"] + (["bbox"] if "bbox" in iou_types else []) + (["segmentation"] if "segm" in iou_types else [])
    for ann in dataset["annotations"]:
        missing = [k for k in need if k not in ann]
        if missing:
            raise ValueError(
                f"{source}: annotation id={ann.get('id')} (image {ann.get('image_id')}) has no "
                f"{', '.join(missing)}; COCO evaluation needs them (area = mask or box area); "
                f"fix the file, e.g. check it with tools/check_dataset.py"
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


def _read_json(path: str, what: str) -> Any:
    """The parsed JSON of ``path``; a missing file, a folder, binary content or bad JSON is named with the fix."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what} {path} is a folder; give the .json file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except UnicodeDecodeError:
        raise ValueError(f"{what} {path} is not a JSON text file (binary content); give the .json file") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} {path} is not valid JSON ({e}); give the .json file") from None


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
    check_gt(data, (iou_types,) if isinstance(iou_types, str) else tuple(iou_types), source)
    coco = _coco_class(backend)()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    coco.source = source
    return coco


def read_results(results: str | os.PathLike | Sequence[dict], what: str = "results") -> tuple[list, str]:
    """``(private copy of the results list, its source name)`` from a COCO results json path or a list.

    The copy is shallow per record: pycocotools' ``loadRes`` adds and replaces keys (id, area, ...), never
    values in place. Raises ``FileNotFoundError`` / ``ValueError`` naming the file for a missing file,
    binary content, bad JSON or a top level that is not a list.
    """
    if isinstance(results, (str, os.PathLike)):
        source = os.fspath(results)
        results = _read_json(source, f"{what} file")
    else:
        source = what
    if not isinstance(results, (list, tuple)):
        raise ValueError(
            f"{source}: COCO results must be a JSON list of dicts (image_id, category_id, bbox, score), "
            f"got a {type(results).__name__}"
        )
    return [dict(r) if isinstance(r, dict) else r for r in results], source


def _categories(coco_gt: Any) -> dict[int, str]:
    return {int(c["id"]): str(c.get("name", c["id"])) for c in coco_gt.dataset.get("categories", [])}


def check_results(results: list, iou_type: str, coco_gt: Any, source: str = "results") -> list[dict]:
    """Check COCO results against ``coco_gt`` (fields, image ids, category ids); returns ``results``.

    Records without the fields of ``iou_type`` or with image ids that the ground truth lacks raise a
    ``ValueError`` (``ResultsMismatchError``); category ids it lacks or names that differ for the same id
    give a :class:`~detkit.evaluation.checks.CategoryMismatchWarning` (COCOeval ignores those results).
    For 'segm' the records' boxes are dropped, so mask AP uses the mask area for the size split (as
    Detectron2 and MMDetection do; pycocotools takes the box area when a result has a box).
    """
    need = ("image_id", "category_id", "score", iou_type if iou_type == "bbox" else "segmentation")
    for i, r in enumerate(results):
        missing = [k for k in need if k not in r] if isinstance(r, dict) else list(need)
        if missing:
            raise ValueError(f"{source}: result #{i} lacks {', '.join(missing)} (needed for iou_type={iou_type!r})")
    gt_source = getattr(coco_gt, "source", "the ground truth")
    checks.check_image_ids((r["image_id"] for r in results), coco_gt.getImgIds(), source, gt_source)
    for message in checks.results_category_mismatch(results, _categories(coco_gt), source, gt_source):
        checks.warn_mismatch(message, stacklevel=3)
    if iou_type == "segm":
        for r in results:
            r.pop("bbox", None)
    return results


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
) -> Any:
    """``COCOeval`` of checked ``results`` (not modified) after ``evaluate()`` and ``accumulate()``, no summary.

    pycocotools' prints are captured. ``img_ids`` restricts the images (default all), ``iou_thrs`` replaces
    the IoU thresholds (default 0.50:0.05:0.95).
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
    Returns:
        ``CocoEvalOutput(metrics, cocoeval, log)``; metrics keys are ``f'{iou_type}/{name}'`` for the
        names of ``STAT_NAMES``, AP values in 0..1 (-1 where there is no ground truth).
    """
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
    backend = resolve_backend(backend)
    return evaluate_coco_gt(load_coco_gt(gt, backend, iou_type), results, iou_type, img_ids, backend, verbose)


def evaluate_coco_gt(
    coco_gt: Any,
    results: str | os.PathLike | Sequence[dict],
    iou_type: str = "bbox",
    img_ids: Iterable[int] | None = None,
    backend: str = "pycocotools",
    verbose: bool = False,
) -> CocoEvalOutput:
    """``evaluate_coco`` on a private ground-truth COCO object of ``backend``'s class (from ``load_coco_gt``)."""
    dets, source = read_results(results)
    dets = check_results(dets, iou_type, coco_gt, source)
    if not dets:
        warnings.warn(
            f"no {iou_type} detections to evaluate: every AP is 0 (-1 where there is no ground truth)", stacklevel=3
        )
    E = accumulate_cocoeval(coco_gt, dets, iou_type, img_ids, backend)
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        E.summarize()
    text = log.getvalue()
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
) -> dict[str, float]:
    """Return pycocotools' COCO metrics (``bbox/AP``, ``bbox/AP50``, ... in 0..1, -1 = undefined).

    See ``evaluate_coco`` for the arguments; this returns only the metric dict.
    """
    return evaluate_coco(gt_json, results, iou_type, img_ids, backend, verbose).metrics


def mean_valid(values: np.ndarray) -> float:
    """Mean of the entries > -1 (pycocotools' "defined" precisions and recalls), -1.0 when there is none."""
    values = values[values > -1]
    return float(np.mean(values)) if values.size else -1.0


def max_det_index(params: Any) -> int:
    """Index of maxDets=100 in a COCOeval's params (the last maxDets when 100 is not one)."""
    dets = list(params.maxDets)
    return dets.index(100) if 100 in dets else len(dets) - 1


def per_class_ap(cocoeval: Any, class_names: Mapping[int, str] | None = None) -> list[ClassAP]:
    """Per-category AP and AP50 from an accumulated COCOeval, computed as pycocotools computes the overall AP.

    AP averages ``eval['precision'][:, :, k, area='all', maxDets=100]`` over its valid (> -1) entries,
    AP50 the same at IoU 0.5; a category without ground truth gets -1. ``num_gt`` counts the
    non-crowd ground-truth instances of the category in the evaluated images.
    """
    p = cocoeval.params
    precision = np.asarray(cocoeval.eval["precision"])  # [T, R, K, A, M]
    a = list(p.areaRngLbl).index("all")
    m = max_det_index(p)
    t50 = np.where(np.asarray(p.iouThrs) == 0.5)[0]
    gt = cocoeval.cocoGt
    num_gt: dict[int, int] = {}
    for ann in gt.loadAnns(gt.getAnnIds(imgIds=list(p.imgIds))):
        if not ann.get("iscrowd", 0):
            num_gt[ann["category_id"]] = num_gt.get(ann["category_id"], 0) + 1
    rows = []
    for k, cat_id in enumerate(p.catIds):
        cat_id = int(cat_id)
        name = (class_names or {}).get(cat_id) or gt.cats[cat_id].get("name", str(cat_id))
        ap, ap50 = mean_valid(precision[:, :, k, a, m]), mean_valid(precision[t50, :, k, a, m])
        rows.append(ClassAP(name, cat_id, ap, ap50, num_gt.get(cat_id, 0)))
    return rows


AP_UNITS = "AP in 0..1 (COCO), '-' = no ground truth"


def format_ap(value: float) -> str:
    """An AP value in 0..1 as text with 3 decimals, '-' where undefined (-1)."""
    return "-" if value < 0 else f"{value:.3f}"


def format_per_class(rows: Sequence[ClassAP], title: str = "") -> str:
    """Return the per-class rows as a plain-text table (AP in 0..1, said in its first line; '-' where undefined)."""
    width = max([len("class")] + [len(r.name) for r in rows])
    lines = [f"{title} ({AP_UNITS})" if title else f"per-class {AP_UNITS}"]
    lines.append(f"{'class':<{width}}  {'cat_id':>6}  {'AP':>6}  {'AP50':>6}  {'num_gt':>6}")
    lines += [
        f"{r.name:<{width}}  {r.category_id:>6}  {format_ap(r.AP):>6}  {format_ap(r.AP50):>6}  {r.num_gt:>6}"
        for r in rows
    ]
    return "\n".join(lines)


def masks_to_rle(masks: torch.Tensor) -> list[dict]:
    """Encode instance masks ``[N, H, W]`` (bool/uint8, or float thresholded at 0.5) as COCO RLEs.

    Each RLE is ``{'size': [H, W], 'counts': str}`` (counts decoded from bytes, so it is JSON-ready).
    """
    m = masks.detach()
    m = (m > 0.5) if m.is_floating_point() else (m != 0)
    if m.dim() != 3:
        raise ValueError(f"masks must be [N, H, W], got shape {tuple(m.shape)}")
    if m.shape[0] == 0:
        return []
    arr = np.asfortranarray(m.to("cpu", torch.uint8).numpy().transpose(1, 2, 0))  # [H, W, N], Fortran order
    rles = mask_utils.encode(arr)
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return rles


def label_list(label_to_cat_id: Sequence[int] | Mapping[int, int]) -> list[int]:
    """Return the label -> category id map as a list indexed by label (a dict must have keys 0..C-1)."""
    if isinstance(label_to_cat_id, Mapping):
        keys = sorted(int(k) for k in label_to_cat_id)
        if keys != list(range(len(keys))):
            raise ValueError(f"label_to_cat_id keys must be the contiguous labels 0..{len(keys) - 1}, got {keys}")
        return [int(label_to_cat_id[k]) for k in sorted(label_to_cat_id, key=int)]
    return [int(c) for c in label_to_cat_id]


def prediction_to_coco(
    image_id: int, pred: Mapping[str, torch.Tensor], label_to_cat_id: Sequence[int], with_masks: bool = True
) -> list[dict]:
    """COCO results records for one image's prediction (xyxy boxes -> xywh, labels -> category ids, masks -> RLE).

    ``pred``: ``boxes`` [N,4] xyxy, ``scores`` [N], ``labels`` [N] in 0..C-1, optional ``masks`` [N,H,W].
    """
    boxes = pred["boxes"].detach().to("cpu", torch.float64).reshape(-1, 4)
    boxes[:, 2:] -= boxes[:, :2]  # xyxy -> xywh
    scores = pred["scores"].detach().cpu().tolist()
    labels = pred["labels"].detach().cpu().tolist()
    n_cls = len(label_to_cat_id)
    if labels and not (min(labels) >= 0 and max(labels) < n_cls):
        raise ValueError(
            f"image {image_id}: predicted labels must lie in 0..{n_cls - 1} (the dataset's "
            f"{n_cls} classes), got {min(labels)}..{max(labels)}; check model.num_classes"
        )
    rles = masks_to_rle(pred["masks"]) if with_masks and pred.get("masks") is not None else None
    out = []
    for j, (box, score, label) in enumerate(zip(boxes.tolist(), scores, labels)):
        r = {
            "image_id": image_id,
            "category_id": int(label_to_cat_id[label]),
            "bbox": [float(v) for v in box],
            "score": float(score),
        }
        if rles is not None:
            r["segmentation"] = rles[j]
        out.append(r)
    return out
