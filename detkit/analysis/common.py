"""Shared pieces of the analysis: ground truth / results loading, a COCOeval runner, IoU matrices, figures.

Everything is measured with pycocotools (the same ``COCOeval`` as ``detkit.evaluation``); IoUs outside
COCOeval come from ``torchvision.ops.box_iou`` (boxes) and ``pycocotools.mask.iou`` (masks, crowd regions).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.cocoeval import COCOeval
from torchvision.ops import box_iou

# private helpers of the evaluation package: the same result checks and empty-result handling as coco_metrics
from detkit.evaluation.coco_metrics import _empty_results_coco, _load_results, load_coco_gt
from detkit.utils.files import atomic_write

__all__ = [
    "category_names",
    "iou_matrix",
    "is_ignored_gt",
    "load_gt",
    "load_results",
    "pyplot",
    "run_cocoeval",
    "save_figure",
    "write_csv",
]


def load_gt(gt: str | os.PathLike | dict | Any, iou_type: str = "bbox") -> Any:
    """A private pycocotools ``COCO`` copy of ``gt`` (json path, dict or COCO object; never modified)."""
    return load_coco_gt(gt, "pycocotools", iou_type)


def _read_results(results: str | os.PathLike | Sequence[dict]) -> list[dict]:
    if isinstance(results, (str, os.PathLike)):
        path = os.fspath(results)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"predictions file not found: {path}")
        with open(path, encoding="utf-8") as f:
            try:
                results = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not valid JSON ({e}); expected a COCO results list") from e
        if not isinstance(results, list):
            raise ValueError(f"{path}: COCO results must be a JSON list of dicts, got {type(results).__name__}")
    return [dict(r) if isinstance(r, dict) else r for r in results]


def load_results(results: str | os.PathLike | Sequence[dict], coco_gt: Any, iou_type: str = "bbox") -> list[dict]:
    """Validated private copy of COCO results, matched to ``coco_gt``'s images.

    Results that carry a ``file_name`` (``tools/infer.py`` writes one, with the input's index as
    ``image_id``) are matched to the ground-truth image of that file name (its last path components), so
    predictions made on an image folder can be analysed against the folder's annotation file.
    Results of categories absent from the ground truth are dropped (COCOeval ignores them too).
    """
    res = _read_results(results)
    if res and all(isinstance(r, dict) and "file_name" in r for r in res):
        res = _match_file_names(res, coco_gt)
    res = _load_results(res, iou_type, set(coco_gt.getImgIds()), set(coco_gt.getCatIds()))
    cats = set(coco_gt.getCatIds())
    return [r for r in res if r["category_id"] in cats]


def _match_file_names(res: list[dict], coco_gt: Any) -> list[dict]:
    by_name: dict[str, int] = {}
    for im in coco_gt.dataset["images"]:
        parts = Path(str(im.get("file_name", ""))).parts
        for k in range(1, len(parts) + 1):  # every path suffix: 'a.png', 'sub/a.png', ...
            by_name.setdefault("/".join(parts[-k:]), im["id"])
    out, missing = [], set()
    for r in res:
        parts = Path(str(r["file_name"])).parts
        img_id = next(
            (by_name[k] for k in ("/".join(parts[-n:]) for n in range(len(parts), 0, -1)) if k in by_name), None
        )
        if img_id is None:
            missing.add(str(r["file_name"]))
            continue
        out.append({**r, "image_id": img_id})
    if missing:
        raise ValueError(
            f"{len(missing)} predicted file(s) are not images of the ground truth (e.g. "
            f"{sorted(missing)[0]}); analyse predictions against the annotation file of the "
            f"images they were made on"
        )
    return out


def run_cocoeval(
    coco_gt: Any,
    results: Sequence[dict],
    iou_type: str = "bbox",
    iou_thrs: Sequence[float] | None = None,
    img_ids: Sequence[int] | None = None,
) -> COCOeval:
    """``COCOeval.evaluate()`` + ``accumulate()`` (pycocotools' prints captured), no summary.

    Args:
        coco_gt: a private ground-truth COCO (see ``load_gt``); results: validated results (``load_results``),
            not modified; iou_thrs: IoU thresholds (default pycocotools' 0.50:0.05:0.95);
            img_ids: images to evaluate (default all).
    """
    with contextlib.redirect_stdout(io.StringIO()):
        dets = [dict(r) for r in results]  # loadRes writes ids and areas into the records
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            coco_dt = coco_gt.loadRes(dets) if dets else _empty_results_coco(coco_gt, "pycocotools")
        E = COCOeval(coco_gt, coco_dt, iou_type)
        if iou_thrs is not None:
            E.params.iouThrs = np.asarray(iou_thrs, dtype=np.float64)
        if img_ids is not None:
            E.params.imgIds = sorted(int(i) for i in img_ids)
        E.evaluate()
        E.accumulate()
    return E


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


def pyplot():
    """matplotlib.pyplot on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save and close a figure atomically (tmp file + rename); returns the path."""
    plt = pyplot()
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()))
    return path


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    """Write a CSV file atomically."""
    text = io.StringIO()
    w = csv.writer(text, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    atomic_write(path, lambda f: f.write(text.getvalue().encode("utf-8")))
    return Path(path)
