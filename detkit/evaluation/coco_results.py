"""COCO results records: one image's prediction as records (xywh boxes, category ids, RLE masks), and a results
file or list read and checked against a ground truth (fields, value types, image and category ids)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils

from detkit.data.instance_masks import _finite
from detkit.evaluation import checks


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
        problem = _bad_values(r, iou_type)
        if problem:
            raise checks.ResultsMismatchError(
                f"{source}: result #{i} (image_id {r.get('image_id')!r}): {problem}; COCO results are "
                "{image_id: int, category_id: int, bbox: [x, y, w, h], score: number} (tools/infer.py writes them)"
            )
    gt_source = getattr(coco_gt, "source", "the ground truth")
    checks.check_image_ids((r["image_id"] for r in results), coco_gt.getImgIds(), source, gt_source)
    for message in checks.results_category_mismatch(results, _categories(coco_gt), source, gt_source):
        checks.warn_mismatch(message, stacklevel=3)
    if iou_type == "segm":
        for r in results:
            r.pop("bbox", None)
    return results


def _bad_values(r: dict, iou_type: str) -> str | None:
    """What is wrong with the values of one result record (types, a box of 4 finite numbers), or None."""
    for key in ("image_id", "category_id"):
        if not isinstance(r[key], int) or isinstance(r[key], bool):
            return f"{key} {r[key]!r} is not an integer" + (
                " (a number written as text)" if isinstance(r[key], str) else ""
            )
    if not _finite(r["score"]):
        return f"score {r['score']!r} is not a finite number"
    box = r.get("bbox")
    four = isinstance(box, (list, tuple)) and len(box) == 4 and all(_finite(v) for v in box)
    if (iou_type == "bbox" or box is not None) and not four:
        return f"bbox {box!r} is not [x, y, width, height] of 4 finite numbers"
    return None  # (a negative width is a box that matches nothing: a model's prediction, scored as pycocotools does)
