"""Tracking a video file or a folder of frames into files: the drawn video, a MOT text file and a JSON.

Under ``out_dir``, per source named ``<stem>`` (:func:`output_stem`; ``tools/track.py`` suffixes ``_2``, ``_3``...
when two inputs give one name): ``<stem>.mp4`` (tracks drawn with ids and trails),
``<stem>.txt`` (MOT Challenge lines ``frame,id,x,y,w,h,score,-1,-1,-1``, frames from 1) and ``<stem>.json``
(the tracker and its options, the class names, per track its class and frame span, per frame its tracks,
and with a ground truth the MOT metrics).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch import nn

from detkit.track.api import build_tracker, detection_thr, frame_batches, merge_duplicates
from detkit.track.draw import TrackDrawer
from detkit.track.mot import mot_metrics, write_mot
from detkit.track.sources import open_frames
from detkit.utils.output_names import clobbered

__all__ = ["output_files", "output_stem", "summarize_tracks", "track_video"]


def output_stem(source: str | os.PathLike) -> str:
    """The outputs' name for a source: a video's stem, a folder's name (its parent's for MOT's ``img1``)."""
    path = Path(source)
    if path.is_dir():
        path = path.absolute()
        return path.parent.name if path.name == "img1" and path.parent.name else path.name
    return path.stem


def output_files(out_dir: str | os.PathLike, stem: str, draw: bool = True) -> dict[str, Path]:
    """The files :func:`track_video` writes for the name ``stem``: ``mot``, ``json`` and with ``draw`` ``video``."""
    out_dir = Path(out_dir)
    files = {"mot": out_dir / f"{stem}.txt", "json": out_dir / f"{stem}.json"}
    if draw:
        files["video"] = out_dir / f"{stem}.mp4"
    return files


class VideoOut:
    """An mp4v writer into a temporary file, renamed to ``path`` by :meth:`close` (never a half-written video)."""

    def __init__(self, path: Path, fps: float, width: int, height: int):
        self.path, self.tmp = path, path.with_name(f".{path.stem}.tmp{path.suffix}")
        self.writer = cv2.VideoWriter(os.fspath(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not self.writer.isOpened():
            raise OSError(f"OpenCV cannot write video {path} (codec mp4v missing?)")

    def write(self, rgb: np.ndarray) -> None:
        self.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        self.writer.release()
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        """Stop after a failure: the temporary file is removed, ``path`` left as it was."""
        self.writer.release()
        self.tmp.unlink(missing_ok=True)


def summarize_tracks(frames: Sequence[dict], class_names: Sequence[str]) -> list[dict]:
    """Per track id: its class (the last frame's label), first and last frame (from 1) and number of boxes."""
    tracks: dict[int, dict] = {}
    for index, result in enumerate(frames):
        for tid, label in zip(result["ids"].tolist(), result["labels"].tolist()):
            entry = tracks.setdefault(tid, {"id": tid, "first_frame": index + 1, "boxes": 0})
            entry.update(last_frame=index + 1, label=label, boxes=entry["boxes"] + 1)
            entry["class"] = class_names[label] if 0 <= label < len(class_names) else str(label)
    return [tracks[k] for k in sorted(tracks)]


def _per_frame(frames: Sequence[dict]) -> list[dict]:
    return [
        {
            "frame": index + 1,
            "tracks": [
                {"id": tid, "box": [round(v, 2) for v in box], "score": round(score, 4), "label": label}
                for tid, box, score, label in zip(
                    r["ids"].tolist(), r["boxes"].tolist(), r["scores"].tolist(), r["labels"].tolist()
                )
            ],
        }
        for index, r in enumerate(frames)
    ]


def _run(model: nn.Module, source: Path, tracker, out: VideoOut | None, drawer: TrackDrawer, bar, options: dict):
    """Detect, link, draw one source (``options``: batch_size, nms_iou); returns the per-frame results and the
    best detection score given to the tracker (None without any)."""
    import detkit

    results, size, thr, best = [], options["batch_size"], detection_thr(tracker), None
    for batch in frame_batches(open_frames(source)[1], size):
        for image, det in zip(batch, detkit.predict(model, batch, score_thr=thr, batch_size=size)):
            if "boxes" not in det:
                raise ValueError(f"tracking needs a detector; {type(model).__name__} gives no boxes")
            det = merge_duplicates(det, options["nms_iou"])
            if len(det["scores"]):
                top = float(det["scores"].max())
                best = top if best is None else max(best, top)
            results.append(tracker.update(det["boxes"], det["scores"], det["labels"]))
            if out is not None:
                out.write(drawer.draw(image, results[-1]))
        bar.update(len(batch))
    return results, best


def track_video(
    model: nn.Module,
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    tracker: str = "bytetrack",
    tracker_options: dict[str, Any] | None = None,
    gt_file: str | os.PathLike | None = None,
    min_iou: float = 0.5,
    batch_size: int = 1,
    nms_iou: float | None = 0.7,
    draw: bool = True,
    trail: int = 30,
    progress: bool = True,
    stem: str | None = None,
) -> dict:
    """Track one video file or folder of frames with ``model``; write the outputs (module docstring).

    ``tracker`` and ``tracker_options`` as :func:`detkit.track.build_tracker` takes them; ``nms_iou`` as
    :func:`detkit.track.track`; ``min_iou`` the IoU of a true positive against ``gt_file``; ``stem`` the outputs'
    name (:func:`output_files`; None: :func:`output_stem` of ``source``).

    An output that would replace ``source`` or ``gt_file`` is a ``ValueError``, before anything is written.

    Returns a summary: ``source``, ``stem``, ``frames``, ``tracks`` (:func:`summarize_tracks`), ``boxes``,
    ``max_score`` (the best detection score the tracker was given, None without any), ``mot``, ``json``,
    ``video`` (None without ``draw``) and ``metrics`` (with ``gt_file``: :func:`detkit.track.mot_metrics`).
    """
    from tqdm import tqdm

    options = dict(tracker_options or {})
    linker = build_tracker(tracker, **options)
    info, _ = open_frames(source)  # the source is readable, and its size and rate
    stem = output_stem(source) if stem is None else stem
    files = output_files(out_dir, stem, draw)
    clash = clobbered(files.values(), [p for p in (source, gt_file) if p is not None and Path(p).is_file()])
    if clash is not None:
        raise ValueError(f"the output {clash[0]} would replace the input {clash[1]}; choose another out_dir")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    video = VideoOut(files["video"], float(info["fps"]), info["width"], info["height"]) if draw else None
    bar = tqdm(total=info["frame_count"], desc=f"track {stem}", unit="frame", disable=None if progress else True)
    try:
        run_options = {"batch_size": batch_size, "nms_iou": nms_iou}
        drawer = TrackDrawer(model.class_names, trail)
        results, max_score = _run(model, Path(source), linker, video, drawer, bar, run_options)
    except BaseException:
        if video is not None:
            video.discard()
        raise
    finally:
        bar.close()
    if video is not None:
        video.close()
    mot = write_mot(files["mot"], results)
    summary = {"source": str(source), "tracker": tracker, "options": {**linker.options(), "nms_iou": nms_iou}}
    summary.update(_describe(results, model.class_names, info, max_score))
    summary["metrics"] = mot_metrics(gt_file, mot, min_iou) if gt_file is not None else None
    path = files["json"]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({**summary, "per_frame": _per_frame(results)}, indent=1), encoding="utf-8")
    os.replace(tmp, path)
    return {**summary, "stem": stem, "mot": mot, "json": path, "video": video.path if video is not None else None}


def _describe(results: Sequence[dict], class_names: Sequence[str], info: dict, max_score: float | None) -> dict:
    """The JSON's description of a tracked source: classes, video size and rate, counts, tracks."""
    return {
        "class_names": list(class_names),
        "fps": float(info["fps"]),
        "width": info["width"],
        "height": info["height"],
        "frames": len(results),
        "boxes": sum(len(r["ids"]) for r in results),
        "max_score": max_score,
        "tracks": summarize_tracks(results, class_names),
    }
