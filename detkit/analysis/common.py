"""Shared pieces of the analysis: ground truth / results loading, a COCOeval runner, IoU matrices.

Everything is measured with pycocotools (the same ``COCOeval`` as ``detkit.evaluation``); IoUs outside
COCOeval come from ``torchvision.ops.box_iou`` (boxes) and ``pycocotools.mask.iou`` (masks, crowd regions).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.cocoeval import COCOeval
from torchvision.ops import box_iou

from detkit.evaluation.checks import coverage_mismatch, warn_mismatch
from detkit.evaluation.coco_metrics import accumulate_cocoeval, check_results, load_coco_gt, read_results

__all__ = ["category_names", "iou_matrix", "is_ignored_gt", "load_gt", "load_results", "run_cocoeval"]


def load_gt(gt: str | os.PathLike | dict | Any, iou_type: str = "bbox") -> Any:
    """A private pycocotools ``COCO`` copy of ``gt`` (json path, dict or COCO object; never modified)."""
    return load_coco_gt(gt, "pycocotools", iou_type)


def load_results(
    results: str | os.PathLike | Sequence[dict],
    coco_gt: Any,
    iou_type: str = "bbox",
    img_dir: str | os.PathLike | None = None,
) -> list[dict]:
    """Validated private copy of COCO results, matched to ``coco_gt``'s images.

    Results that carry a ``file_name`` (``tools/infer.py`` writes one, with the input's index as
    ``image_id``) are matched to the ground-truth image of that file name (its last path components), so
    predictions made on an image folder can be analysed against the folder's annotation file.
    Results of categories absent from the ground truth are dropped (COCOeval ignores them too) after a
    :class:`~detkit.evaluation.checks.CategoryMismatchWarning`; so are category names that differ from the
    ground truth's and predictions that cover under half of its images. With ``img_dir`` (the ground truth's
    image folder), a predicted file that exists but is another file than the ground-truth image of its name
    (predictions made on another split) is warned about.
    """
    res, source = read_results(results, "predictions")
    if res and all(isinstance(r, dict) and "file_name" in r for r in res):
        res = _match_file_names(res, coco_gt, source)
        if img_dir is not None:
            _warn_other_files(res, coco_gt, img_dir, source)
    res = check_results(res, iou_type, coco_gt, source)
    message = coverage_mismatch(
        (r["image_id"] for r in res), coco_gt.getImgIds(), source, getattr(coco_gt, "source", "the ground truth")
    )
    if message:
        warn_mismatch(message)
    cats = set(coco_gt.getCatIds())
    return [r for r in res if r["category_id"] in cats]


def _match_file_names(res: list[dict], coco_gt: Any, source: str) -> list[dict]:
    from detkit.utils.file_match import lookup, suffix_index

    by_name = suffix_index((im.get("file_name", ""), im["id"]) for im in coco_gt.dataset["images"])
    out, missing = [], set()
    for r in res:
        img_id = lookup(by_name, r["file_name"])
        if img_id is None:
            missing.add(str(r["file_name"]))
            continue
        out.append({**r, "image_id": img_id})
    if missing:
        raise ValueError(
            f"{source}: {len(missing)} predicted file(s) are not images of "
            f"{getattr(coco_gt, 'source', 'the ground truth')} (e.g. {sorted(missing)[0]}); analyse the "
            "predictions against the annotation file of the images they were made on"
        )
    return out


def _warn_other_files(res: list[dict], coco_gt: Any, img_dir: str | os.PathLike, source: str) -> None:
    """Warn when matched predicted files exist and are not the ground-truth images (``img_dir / file_name``)
    they were matched to by name."""
    from detkit.utils.file_match import other_files

    names = {im["id"]: im.get("file_name", "") for im in coco_gt.dataset["images"]}
    other = other_files((str(r["file_name"]), os.path.join(img_dir, str(names[r["image_id"]]))) for r in res)
    if other:
        pred, gt = other[0]
        warn_mismatch(
            f"{source}: {len(other)} predicted file(s) were matched to ground-truth images by name but are other "
            f"files (e.g. {pred}, not {gt}): were the predictions made on another split? Analyse them against the "
            "annotation file of the images they were made on"
        )


def run_cocoeval(
    coco_gt: Any,
    results: Sequence[dict],
    iou_type: str = "bbox",
    iou_thrs: Sequence[float] | None = None,
    img_ids: Sequence[int] | None = None,
    max_dets: int = 100,
) -> COCOeval:
    """``COCOeval.evaluate()`` + ``accumulate()`` (pycocotools' prints captured), no summary.

    Args:
        coco_gt: a private ground-truth COCO (see ``load_gt``); results: validated results (``load_results``),
            not modified; iou_thrs: IoU thresholds (default pycocotools' 0.50:0.05:0.95);
            img_ids: images to evaluate (default all); max_dets: the last maxDets (COCO's 100).
    """
    return accumulate_cocoeval(coco_gt, results, iou_type, img_ids, "pycocotools", iou_thrs, max_dets=max_dets)


def category_names(coco_gt: Any, class_names: Sequence[str] | None = None) -> tuple[list[int], list[str]]:
    """Category ids sorted (the dataset's label order) and their names (``class_names`` override them)."""
    ids = sorted(int(c) for c in coco_gt.getCatIds())
    if class_names is None:
        return ids, [str(coco_gt.cats[c].get("name", c)) for c in ids]
    if len(class_names) != len(ids):
        raise ValueError(
            f"{len(class_names)} class names for the ground truth's {len(ids)} categories "
            f"(ids {ids[:10]}); give one name per category, in category id order"
        )
    return ids, [str(n) for n in class_names]


def is_ignored_gt(ann: dict) -> bool:
    """A crowd / ignore region: not an object to find, but detections on it are not false positives."""
    return bool(ann.get("iscrowd", 0) or ann.get("ignore", 0))


def _xyxy(boxes_xywh: Sequence[Sequence[float]]) -> torch.Tensor:
    b = torch.as_tensor(np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4))
    return torch.cat([b[:, :2], b[:, :2] + b[:, 2:]], dim=1)


def iou_matrix(
    dets: Sequence[dict], gts: Sequence[dict], iou_type: str, coco_gt: Any, crowd: bool = False
) -> np.ndarray:
    """IoU ``[D, G]`` between result records and ground-truth annotations, as COCOeval measures it.

    With ``crowd=True`` the ground truths are crowd regions and the value is COCO's crowd overlap
    (intersection over the detection's area).
    """
    if not dets or not gts:
        return np.zeros((len(dets), len(gts)))
    if iou_type == "bbox" and not crowd:
        return box_iou(_xyxy([d["bbox"] for d in dets]), _xyxy([g["bbox"] for g in gts])).numpy()
    if iou_type == "bbox":
        d, g = [list(map(float, x["bbox"])) for x in dets], [list(map(float, x["bbox"])) for x in gts]
    else:
        d, g = [x["segmentation"] for x in dets], [coco_gt.annToRLE(x) for x in gts]
    return np.asarray(mask_utils.iou(d, g, [int(crowd)] * len(gts))).reshape(len(dets), len(gts))
