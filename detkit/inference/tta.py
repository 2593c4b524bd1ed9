"""Test-time augmentation: a batch seen at several scales and mirrored, the predictions merged.

Each view is made from the batch the test pipeline produced (after its resize / letterbox): the image
content is mirrored left-right inside its letterbox (the padding stays where it is) and the whole input is
resized by a factor. The batch's ``scale_factors`` / ``pad_offsets`` follow the resize, so the model maps
its outputs back to the original image itself; a mirrored view's outputs are then mirrored back (``x ->
W0 - x``). Without a resize in the test pipeline the mirrored view equals the pipeline run on the mirrored
image, so a mirrored view maps back exactly.

Merging (docs/inference.md, "Test-time augmentation and ensembles"):

- detectors: class-aware NMS (``detkit.inference.tiling.merge_detections``: ``torchvision.ops.batched_nms``)
  or weighted box fusion (the ``ensemble-boxes`` package; a fused box is the score-weighted mean of the
  boxes of its cluster, its score their mean scaled by the share of views that found it). Instance masks: with
  NMS the kept detection's mask; with WBF a score-weighted vote of the masks of the detections whose best
  same-class fused box it is (IoU > ``iou_thr``), a pixel kept where the vote reaches one half.
- segmentors: the per-pixel class probabilities (softmax of the logits) averaged, then the argmax.
- classifiers: the class probabilities averaged, then the top-k.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detkit.models.detectors.parts import batch_geometry

__all__ = [
    "DEFAULT_IOU",
    "MERGE_METHODS",
    "TTAOptions",
    "average_class_scores",
    "average_sem_probs",
    "flip_detections",
    "fuse_detections",
    "parse_scales",
    "parse_tta",
    "sem_probs",
    "view_batch",
]

MERGE_METHODS = ("nms", "wbf")
DEFAULT_IOU = {"nms": 0.55, "wbf": 0.7}
WBF_CONF_TYPES = ("avg", "max", "box_and_model_avg", "absent_model_aware_avg")


@dataclass
class TTAOptions:
    """Which views to run and how to merge their predictions.

    Args:
        scales: resize factors of the network input (1.0: as the test pipeline made it).
        flip: also run every scale mirrored left-right.
        merge: ``'nms'`` (class-aware NMS, the default: the better of the two on the shapes data,
            docs/inference.md) or ``'wbf'`` (weighted box fusion) for detections.
        iou_thr: IoU above which two same-class detections are the same object (NMS duplicate / WBF cluster);
            None: 0.55 for NMS, 0.7 for WBF (the better of 0.55 and 0.7 for each on the shapes data).
        conf_type: WBF's fused score (``'avg'``, ``'max'``, ``'box_and_model_avg'``, ``'absent_model_aware_avg'``).
        max_per_img: detections kept per image after merging (None: 100, COCO's limit and the test setting of
            the shipped configs, or the most that any one view gave when that is more).
    """

    scales: tuple[float, ...] = (0.83, 1.0, 1.2)
    flip: bool = True
    merge: str = "nms"
    iou_thr: float | None = None
    conf_type: str = "avg"
    max_per_img: int | None = None

    def __post_init__(self):
        self.scales = parse_scales(self.scales)
        if self.merge not in MERGE_METHODS:
            raise ValueError(f"tta merge must be one of {MERGE_METHODS}, got {self.merge!r}")
        if self.iou_thr is None:
            self.iou_thr = DEFAULT_IOU[self.merge]
        if not 0.0 < float(self.iou_thr) <= 1.0:
            raise ValueError(f"tta iou_thr must be in (0, 1], got {self.iou_thr}")
        if self.conf_type not in WBF_CONF_TYPES:
            raise ValueError(f"tta conf_type must be one of {WBF_CONF_TYPES}, got {self.conf_type!r}")
        if self.max_per_img is not None and int(self.max_per_img) < 1:
            raise ValueError(f"tta max_per_img must be >= 1 or None, got {self.max_per_img}")
        self.iou_thr = float(self.iou_thr)

    def views(self) -> list[tuple[float, bool]]:
        """``(scale, flipped)`` of every view, the unchanged view first when it is one of them."""
        flips = (False, True) if self.flip else (False,)
        views = [(s, f) for f in flips for s in self.scales]
        return sorted(views, key=lambda v: v != (1.0, False))


def parse_scales(scales: Any) -> tuple[float, ...]:
    """Scale factors from ``"0.83,1,1.2"``, a number or a sequence; each must be > 0."""
    if isinstance(scales, str):
        try:
            scales = [float(v) for v in scales.split(",") if v.strip()]
        except ValueError:
            raise ValueError(
                f"tta scales must be numbers separated by commas (e.g. 0.83,1,1.2), got {scales!r}"
            ) from None
    elif isinstance(scales, (int, float)):
        scales = [scales]
    scales = tuple(float(s) for s in scales)
    if not scales or min(scales) <= 0:
        raise ValueError(f"tta scales must be one or more factors > 0, got {scales}")
    return scales


def parse_tta(tta: Any, **defaults: Any) -> TTAOptions | None:
    """``TTAOptions`` from True (the defaults), a dict of options, or TTAOptions; None / False: no TTA."""
    if tta is None or tta is False:
        return None
    if isinstance(tta, TTAOptions):
        return tta
    if tta is True:
        return TTAOptions(**defaults)
    if isinstance(tta, dict):
        known = {f.name for f in fields(TTAOptions)}
        unknown = sorted(set(tta) - known)
        if unknown:
            raise ValueError(f"unknown tta option(s) {unknown}; known: {sorted(known)}")
        return TTAOptions(**{**defaults, **tta})
    raise TypeError(f"tta must be True, a dict of options or TTAOptions, got {type(tta).__name__}")


def _content_span(length: int, scale: float, offset: float, orig_length: int) -> tuple[int, int]:
    """``[start, end)`` along one axis of an input ``length`` pixels long that holds the image content (between
    the letterbox padding): ``offset`` pixels of padding first, then ``orig_length * scale`` of content."""
    start = max(0, int(round(offset)))
    end = min(length, int(round(offset + orig_length * scale)))
    return (start, end) if end > start else (0, length)


def _resized(image: Tensor, scale: float) -> Tensor:
    """uint8 [3,h,w] -> uint8 [3,round(h*s),round(w*s)], bilinear (antialiased when shrinking)."""
    h, w = image.shape[-2:]
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    out = F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False, antialias=scale < 1)
    return out[0].round().clamp(0, 255).to(image.dtype)


def view_batch(batch: dict, scale: float = 1.0, flip: bool = False) -> dict:
    """The batch as one view: each image's content mirrored (``flip``), then the input resized by ``scale``.

    Args:
        batch: a collated batch: ``images`` uint8 [B,3,H,W], ``image_sizes`` and the geometry
            (``scale_factors``, ``pad_offsets``, ``orig_sizes``) that maps it to the original images.

    Returns:
        a new batch dict: ``images`` [B,3,H',W'] (H' ~ H * scale), ``image_sizes``, ``scale_factors`` and
        ``pad_offsets`` scaled with the resize (``orig_sizes`` unchanged), so that ``model.predict`` gives
        outputs in original pixels (of the mirrored image when ``flip``). The input batch is returned when
        the view changes nothing.
    """
    if scale == 1.0 and not flip:
        return batch
    scales, pads, origs = batch_geometry(batch)
    images, sizes, new_scales, new_pads = [], [], [], []
    for i, (h, w) in enumerate(tuple(int(v) for v in s) for s in batch["image_sizes"]):
        image = batch["images"][i, :, :h, :w]
        if flip:
            x0, x1 = _content_span(w, float(scales[i][0]), float(pads[i][0]), origs[i][1])
            image = image.clone()
            image[:, :, x0:x1] = image[:, :, x0:x1].flip(-1)
        if scale != 1.0:
            image = _resized(image, scale)
        nh, nw = image.shape[-2:]
        fx, fy = nw / w, nh / h  # the exact factors of the rounded size
        images.append(image)
        sizes.append((int(nh), int(nw)))
        new_scales.append((float(scales[i][0]) * fx, float(scales[i][1]) * fy))
        new_pads.append((float(pads[i][0]) * fx, float(pads[i][1]) * fy))
    out = batch["images"].new_zeros((len(images), 3, max(s[0] for s in sizes), max(s[1] for s in sizes)))
    for i, image in enumerate(images):
        out[i, :, : image.shape[1], : image.shape[2]] = image
    view = {k: v for k, v in batch.items() if k != "pad_size"}  # pad_size: a training step's global padding
    view.update(images=out, image_sizes=sizes, scale_factors=new_scales, pad_offsets=new_pads, orig_sizes=origs)
    return view


def flip_detections(pred: dict[str, Tensor], width: int) -> dict[str, Tensor]:
    """Mirror a prediction of an image ``width`` pixels wide: boxes [N,4] ``x -> width - x``, masks [N,H,W]."""
    out = dict(pred)
    boxes = pred["boxes"]
    out["boxes"] = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)
    if "masks" in pred:
        out["masks"] = pred["masks"].flip(-1)
    return out


def sem_probs(model: nn.Module, batch: dict) -> list[Tensor]:
    """A segmentor's class probabilities per image in original pixels: float [C,H0,W0] each.

    ``model.inference`` gives logits at the input size; ``model.logits_to_original`` cuts the letterbox
    padding off and resizes the rest as ``Segmentor.predict`` does before its argmax; then softmax.
    """
    logits = model.inference(model.preprocess(batch))  # [B,C,H,W]
    return [x.float().softmax(0) for x in model.logits_to_original(logits, batch)]


def average_sem_probs(probs: Sequence[Tensor]) -> dict[str, Tensor]:
    """``{'sem_seg': int64 [H0,W0]}``: the argmax of the mean of per-view probabilities [C,H0,W0]."""
    return {"sem_seg": torch.stack(list(probs)).mean(0).argmax(0).to(torch.int64)}


def average_class_scores(preds: Sequence[dict[str, Tensor]], topk: int) -> dict[str, Tensor]:
    """A classifier's views merged: ``scores`` float32 [C] the mean probabilities, ``labels`` int64 [k] top-k."""
    scores = torch.stack([p["scores"].float() for p in preds]).mean(0)  # [C]
    return {"scores": scores, "labels": scores.topk(min(int(topk), scores.numel())).indices.to(torch.int64)}


def _wbf(boxes: Tensor, scores: Tensor, labels: Tensor, view: Tensor, hw: Sequence[int], options: TTAOptions):
    """Weighted box fusion of boxes [N,4] (original pixels) from ``view`` int64 [N]; returns boxes, scores, labels."""
    try:
        from ensemble_boxes import weighted_boxes_fusion
    except ImportError:
        raise ImportError(
            "weighted box fusion needs the ensemble-boxes package: pip install 'detkit[tta]' (or merge by NMS: "
            "--tta-merge nms, tta={'merge': 'nms'})"
        ) from None

    h, w = float(hw[0]), float(hw[1])
    norm = (boxes / boxes.new_tensor([w, h, w, h])).clamp(0, 1).double().numpy()
    n_views = int(view.max()) + 1 if len(view) else 1
    lists = [[], [], []]
    for v in range(n_views):
        idx = (view == v).numpy()
        lists[0].append(norm[idx])
        lists[1].append(scores.double().numpy()[idx])
        lists[2].append(labels.numpy()[idx])
    with warnings.catch_warnings():  # ensemble-boxes warns once per box it clips or skips
        warnings.simplefilter("ignore")
        fused, fused_scores, fused_labels = weighted_boxes_fusion(
            *lists, iou_thr=options.iou_thr, skip_box_thr=0.0, conf_type=options.conf_type
        )
    fused = torch.from_numpy(np.asarray(fused, np.float32).reshape(-1, 4)) * torch.tensor([w, h, w, h])
    return fused, torch.from_numpy(np.asarray(fused_scores, np.float32)), torch.from_numpy(fused_labels).long()


def _vote_masks(fused: Tensor, fused_labels: Tensor, det: dict[str, Tensor], iou_thr: float) -> Tensor:
    """bool [K,H,W]: per fused box the score-weighted vote (>= 1/2) of its members' masks ``det['masks']``."""
    from torchvision.ops import box_iou

    out = torch.zeros((len(fused), *det["masks"].shape[-2:]), dtype=torch.bool)
    if len(fused) == 0:
        return out
    iou = box_iou(fused, det["boxes"])  # [K,N]
    iou[fused_labels[:, None] != det["labels"][None]] = -1.0
    members = (iou == iou.max(0, keepdim=True).values) & (iou > iou_thr)  # each detection to its best fused box
    for k in range(len(fused)):
        idx = torch.where(members[k])[0]
        if len(idx) == 0:  # the fused box moved away from all of its members: the closest one's mask
            idx = iou[k].argmax()[None]
        weights = det["scores"][idx].float().clamp(min=1e-12)
        vote = (det["masks"][idx].float() * weights[:, None, None]).sum(0) / weights.sum()
        out[k] = vote >= 0.5
    return out


def _gather_views(preds: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
    """The detections of all views, concatenated, with ``view`` int64 [N] (the index of the view)."""
    out = {
        "boxes": torch.cat([p["boxes"].float().reshape(-1, 4) for p in preds]),
        "scores": torch.cat([p["scores"].float().reshape(-1) for p in preds]),
        "labels": torch.cat([p["labels"].to(torch.int64).reshape(-1) for p in preds]),
        "view": torch.cat([torch.full((len(p["boxes"]),), v, dtype=torch.int64) for v, p in enumerate(preds)]),
    }
    if all("masks" in p for p in preds):
        out["masks"] = torch.cat([p["masks"].to(torch.bool) for p in preds])
    return out


def fuse_detections(
    preds: Sequence[dict[str, Tensor]], image_hw: Sequence[int], options: TTAOptions, score_thr: float | None = None
) -> dict[str, Tensor]:
    """Merge the detections of several views (or models) of one image, all in its original pixels.

    Args:
        preds: per view ``boxes`` float [N_v,4] xyxy, ``scores`` [N_v], ``labels`` int64 [N_v] (``masks``
            bool [N_v,H0,W0] when every view has them).
        image_hw: (H0, W0) of the original image.
        options: ``merge`` ('nms' or 'wbf'), ``iou_thr``, ``conf_type``, ``max_per_img``.
        score_thr: drop merged detections scoring below it (WBF lowers the score of a box few views found).

    Returns:
        ``boxes`` float32 [K,4], ``scores`` [K], ``labels`` int64 [K] (``masks`` bool [K,H0,W0]), score-descending,
        on the CPU (as ``detkit.predict`` returns them; views on a GPU are moved first: WBF runs in numpy).
    """
    from detkit.inference.tiling import merge_detections

    preds = [{k: v.cpu() if torch.is_tensor(v) else v for k, v in p.items()} for p in preds]
    det = _gather_views(preds)
    cap = options.max_per_img or max([len(p["boxes"]) for p in preds] + [100])
    if options.merge == "nms":
        keep, _ = merge_detections(det["boxes"], det["scores"], det["labels"], None, options.iou_thr)
        out = {k: det[k][keep] for k in ("boxes", "scores", "labels", "masks") if k in det}
    else:
        valid = (det["boxes"][:, 2] > det["boxes"][:, 0]) & (det["boxes"][:, 3] > det["boxes"][:, 1])
        det = {k: v[valid] for k, v in det.items()}
        boxes, scores, labels = _wbf(det["boxes"], det["scores"], det["labels"], det["view"], image_hw, options)
        out = {"boxes": boxes, "scores": scores, "labels": labels}
        if "masks" in det:
            out["masks"] = _vote_masks(boxes, labels, det, options.iou_thr)
    order = out["scores"].argsort(descending=True, stable=True)[:cap]
    if score_thr is not None:
        order = order[out["scores"][order] >= score_thr]
    return {k: v[order] for k, v in out.items()}
