"""``detkit.track``: a detector's detections on each frame of a video, linked into tracks."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torchvision.ops import nms

from detkit.track.bytetrack import ByteTracker
from detkit.track.classes import keep_classes, model_class_names, resolve_classes
from detkit.track.iou_tracker import IoUTracker
from detkit.track.keywords import tracker_keywords

__all__ = [
    "TRACKERS",
    "build_tracker",
    "detect_frames",
    "detection_thr",
    "frame_batches",
    "link_detections",
    "merge_duplicates",
    "no_detections",
    "track",
]

TRACKERS = {"bytetrack": ByteTracker, "iou": IoUTracker}


def build_tracker(tracker: str | ByteTracker | IoUTracker = "bytetrack", **kwargs: Any) -> ByteTracker | IoUTracker:
    """A new tracker by name (``bytetrack`` or ``iou``, built with ``kwargs``), or the tracker given, as it is.

    A tracker object carries its state (tracks, lost tracks, the next id) from one call to the next, so one
    object fed frame by frame keeps its ids (call its ``reset()`` before a new video); a name builds a fresh
    tracker on every call.
    """
    if not isinstance(tracker, str):
        if kwargs:
            raise ValueError(f"tracker options {sorted(kwargs)} are given with a built tracker; build it with them")
        if not callable(getattr(tracker, "update", None)):
            raise TypeError(
                f"tracker must be 'bytetrack', 'iou' or a tracker object (ByteTracker, IoUTracker), got "
                f"{type(tracker).__name__}"
            )
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
    nms_iou: float | None = 0.7,
    **kwargs: Any,
) -> list[dict[str, torch.Tensor]]:
    """Link per-frame detections (dicts with ``boxes`` [N,4] xyxy, ``scores`` [N], ``labels`` [N], in frame
    order) into tracks; returns per frame ``ids`` [T], ``boxes`` [T,4], ``scores`` [T], ``labels`` [T].
    ``nms_iou``: class-agnostic NMS first (:func:`merge_duplicates`; 0.7 as :func:`track`; None or 1: none).
    ``tracker``: a name builds a new tracker; a tracker object goes on from its state (:func:`build_tracker`)."""
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


def no_detections() -> dict[str, torch.Tensor]:
    """One frame's detections when there are none: ``boxes`` [0,4], ``scores`` [0], ``labels`` [0]."""
    return {"boxes": torch.zeros((0, 4)), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}


def detect_frames(
    model: nn.Module,
    frames: Iterable,
    score_thr: float | None,
    batch_size: int,
    nms_iou: float | None,
    classes: list[int] | None = None,
    channel_order: str = "rgb",
) -> Iterator[tuple[Any, dict]]:
    """Per frame, in order, ``(frame, detections)``: ``detkit.predict`` at ``score_thr`` on ``batch_size`` frames at
    a time (numpy frames in ``channel_order``), the labels ``classes`` only (:func:`keep_classes`; None: all), then
    :func:`merge_duplicates`; a ``None`` frame (an unreadable frame of a folder) has no detections."""
    import detkit

    for batch in frame_batches(frames, batch_size):
        images = [f for f in batch if f is not None]
        found = (
            detkit.predict(model, images, score_thr=score_thr, batch_size=batch_size, channel_order=channel_order)
            if images
            else []
        )
        dets = iter(found)
        for frame in batch:
            det = no_detections() if frame is None else next(dets)
            if "boxes" not in det:
                raise ValueError(f"tracking needs a detector; {type(model).__name__} gives no boxes")
            yield frame, merge_duplicates(keep_classes(det, classes), nms_iou)


def _link(linker: ByteTracker | IoUTracker, detections: Iterable[tuple[Any, dict]]) -> Iterator[dict]:
    for _, det in detections:
        yield linker.update(det["boxes"], det["scores"], det["labels"])


def track(
    model: nn.Module,
    frames: Any,
    tracker: str | ByteTracker | IoUTracker = "bytetrack",
    batch_size: int = 1,
    nms_iou: float | None = 0.7,
    stream: bool = False,
    classes: Any = None,
    channel_order: str = "rgb",
    score_thr: float | None = None,
    **tracker_kwargs: Any,
) -> list[dict[str, torch.Tensor]] | Iterator[dict[str, torch.Tensor]]:
    """Detect objects on every frame with ``model`` and link them into tracks.

    Args:
        model: a detkit detector (e.g. from :func:`detkit.init_model`).
        frames: a video file, a folder of frame images (natural name order), or an iterable of images as
            :func:`detkit.predict` takes them (RGB numpy arrays, paths, PIL images), in order; a ``None`` in it is
            a frame with no detections (how a folder gives an unreadable frame).
        tracker: ``"bytetrack"`` (default) or ``"iou"`` (IoU-only linking, the baseline): a new tracker on each
            call; or a tracker object (``ByteTracker(...)``), which keeps its state from call to call, so
            ``track(model, [frame], tracker=t)`` once per frame follows the same ids (``t.reset()``: a new video).
        batch_size: frames per forward pass.
        nms_iou: class-agnostic NMS at this IoU before linking (:func:`merge_duplicates`; None: off): the
            trackers ignore classes, so one object detected as two classes would become two tracks.
        stream: return an iterator that gives each frame's result as soon as its frame is tracked (live or
            endless sources), instead of the list at the end of the input.
        classes: track only these classes: names (any case) or indices of ``model.class_names``, one or a list
            (Ultralytics' ``classes=``); their detections alone reach the tracker, so no id goes to another
            class. None: every class. An unknown name is a ValueError naming the nearest classes.
        channel_order: ``'rgb'`` (default) or ``'bgr'``, the channel order of frames given as numpy arrays, as
            :func:`detkit.predict` takes it: ``'bgr'`` for frames from ``cv2.VideoCapture`` / ``cv2.imread``.
            Frames detkit reads itself (a video file, a folder, image paths) are RGB whatever it says.
        score_thr: the confident detections' score, the CLI's ``--score-thr``: ByteTrack's ``high_thr`` (0.5),
            the IoU linker's ``score_thr`` (0.5); None: the tracker's default.
        **tracker_kwargs: the tracker's options, as the CLI names them: ``low_thr``, ``track_buffer``,
            ``fuse_score``, ``match_iou`` (:class:`ByteTracker`; ``high_thr`` is ``score_thr``), ``match_iou``
            (:class:`IoUTracker`). Any other keyword is a TypeError naming detkit's form of it (Ultralytics'
            ``conf``, ``iou``, ``persist``, ...: ``detkit.track.keywords``).

    Returns:
        per frame a dict: ``ids`` int64 [T] (1, 2, ... stable along a track), ``boxes`` float32 [T,4] xyxy in
        the frame's pixels, ``scores`` float32 [T], ``labels`` int64 [T] (``model.class_names[label]``); a list,
        or with ``stream`` an iterator.
    """
    from detkit.inference.arguments import check_channel_order, check_count

    options = tracker_keywords(tracker, TRACKERS, score_thr, tracker_kwargs)
    _check_detector(model)
    batch_size = check_count(batch_size, "batch_size", "track")
    order = check_channel_order(channel_order, "track").lower()
    if isinstance(frames, (str, os.PathLike)):
        order = "rgb"  # frames detkit reads (video, folder) are RGB already
    keep = resolve_classes(classes, model_class_names(model))
    linker = build_tracker(tracker, **options)
    detections = detect_frames(model, _frames(frames), detection_thr(linker), batch_size, nms_iou, keep, order)
    results = _link(linker, detections)
    return results if stream else list(results)
