"""``detkit.track``: a detector's detections on each frame of a video, linked into tracks."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torchvision.ops import nms

from detkit.track.bytetrack import ByteTracker
from detkit.track.iou_tracker import IoUTracker

__all__ = [
    "TRACKERS",
    "build_tracker",
    "detection_thr",
    "frame_batches",
    "link_detections",
    "merge_duplicates",
    "track",
]

TRACKERS = {"bytetrack": ByteTracker, "iou": IoUTracker}


def build_tracker(tracker: str | ByteTracker | IoUTracker = "bytetrack", **kwargs: Any) -> ByteTracker | IoUTracker:
    """A tracker by name (``bytetrack`` or ``iou``, built with ``kwargs``) or the tracker given (reset)."""
    if not isinstance(tracker, str):
        if kwargs:
            raise ValueError(f"tracker options {sorted(kwargs)} are given with a built tracker; build it with them")
        tracker.reset()
        return tracker
    if tracker not in TRACKERS:
        raise ValueError(f"unknown tracker {tracker!r}; choose one of {', '.join(TRACKERS)}")
    return TRACKERS[tracker](**kwargs)


def detection_thr(tracker: ByteTracker | IoUTracker) -> float:
    """The lowest detection score the tracker uses (the detector need not return lower ones)."""
    return tracker.low_thr if isinstance(tracker, ByteTracker) else tracker.score_thr


def merge_duplicates(det: dict, nms_iou: float | None) -> dict:
    """Class-agnostic NMS (torchvision) over one frame's detections: a detector that keeps one box per class
    may report one object twice under two classes, and a class-agnostic tracker would start two tracks.
    ``nms_iou`` None or >= 1 keeps every box."""
    if nms_iou is None or nms_iou >= 1.0 or len(det["scores"]) < 2:
        return det
    keep = nms(torch.as_tensor(det["boxes"]).float(), torch.as_tensor(det["scores"]).float(), float(nms_iou))
    return {k: det[k][keep] for k in ("boxes", "scores", "labels")}


def link_detections(
    detections: Iterable[dict],
    tracker: str | ByteTracker | IoUTracker = "bytetrack",
    nms_iou: float | None = None,
    **kwargs: Any,
) -> list[dict[str, torch.Tensor]]:
    """Link per-frame detections (dicts with ``boxes`` [N,4] xyxy, ``scores`` [N], ``labels`` [N], in frame
    order) into tracks; returns per frame ``ids`` [T], ``boxes`` [T,4], ``scores`` [T], ``labels`` [T].
    ``nms_iou``: class-agnostic NMS first (:func:`merge_duplicates`; None: none)."""
    linker = build_tracker(tracker, **kwargs)
    out = []
    for d in detections:
        d = merge_duplicates(d, nms_iou)
        out.append(linker.update(d["boxes"], d["scores"], d["labels"]))
    return out


def _frames(frames: Any) -> Iterator:
    """A video path or frame folder (``detkit.track.sources``), else the iterable of images itself."""
    if isinstance(frames, (str, os.PathLike)):
        from detkit.track.sources import open_frames

        return open_frames(frames)[1]
    one_image = getattr(frames, "ndim", 4) <= 3 or hasattr(frames, "convert")  # not a [T,H,W,3] stack
    if one_image or isinstance(frames, (bytes, dict)):
        raise TypeError(
            f"track: frames must be a video file, a folder of frames or a list (iterable) of images in order, got "
            f"one {type(frames).__name__}; wrap a single frame in a list, or use detkit.predict for one image"
        )
    try:
        return iter(frames)
    except TypeError:
        raise TypeError(
            f"track: frames must be a video file, a folder of frames or a list (iterable) of images in order, got "
            f"{type(frames).__name__}"
        ) from None


def _check_detector(model: nn.Module) -> None:
    """``model`` gives boxes: a detector, or an ensemble of detectors (not a segmentor or a classifier)."""
    from detkit.inference.arguments import check_model
    from detkit.models.detectors.classifier import Classifier
    from detkit.models.detectors.segmentor import Segmentor

    check_model(model, "track")
    members = list(model) if isinstance(model, (list, tuple)) else getattr(model, "models", [model])
    kinds = sorted({type(m).__name__ for m in members if isinstance(m, (Classifier, Segmentor))})
    if kinds:
        raise TypeError(f"track: model must be a detector (boxes to link), got a {', '.join(kinds)}")


def frame_batches(items: Iterable, size: int) -> Iterator[list]:
    """Lists of up to ``size`` consecutive items of ``items`` (frames for one forward pass)."""
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def track(
    model: nn.Module,
    frames: Any,
    tracker: str | ByteTracker | IoUTracker = "bytetrack",
    batch_size: int = 1,
    nms_iou: float | None = 0.7,
    **tracker_kwargs: Any,
) -> list[dict[str, torch.Tensor]]:
    """Detect objects on every frame with ``model`` and link them into tracks.

    Args:
        model: a detkit detector (e.g. from :func:`detkit.init_model`).
        frames: a video file, a folder of frame images (sorted by name), or an iterable of images as
            :func:`detkit.predict` takes them (RGB numpy arrays, paths, PIL images), in order.
        tracker: ``"bytetrack"`` (default), ``"iou"`` (IoU-only linking, the baseline) or a built tracker.
        batch_size: frames per forward pass.
        nms_iou: class-agnostic NMS at this IoU before linking (:func:`merge_duplicates`; None: off): the
            trackers ignore classes, so one object detected as two classes would become two tracks.
        **tracker_kwargs: the tracker's options, e.g. ``high_thr``, ``low_thr``, ``track_buffer``
            (:class:`ByteTracker`) or ``score_thr``, ``match_iou`` (:class:`IoUTracker`).

    Returns:
        per frame a dict: ``ids`` int64 [T] (1, 2, ... stable along a track), ``boxes`` float32 [T,4] xyxy in
        the frame's pixels, ``scores`` float32 [T], ``labels`` int64 [T] (``model.class_names[label]``).
    """
    import detkit
    from detkit.inference.arguments import check_count

    _check_detector(model)
    batch_size = check_count(batch_size, "batch_size", "track")
    linker = build_tracker(tracker, **tracker_kwargs)
    thr = detection_thr(linker)
    out = []
    for batch in frame_batches(_frames(frames), batch_size):
        for det in detkit.predict(model, batch, score_thr=thr, batch_size=batch_size):
            det = merge_duplicates(det, nms_iou)
            out.append(linker.update(det["boxes"], det["scores"], det["labels"]))
    return out
