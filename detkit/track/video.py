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
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch import nn

from detkit.track.api import build_tracker, detect_frames, detection_thr
from detkit.track.classes import model_class_names, resolve_classes
from detkit.track.draw import TrackDrawer
from detkit.track.mot import mot_metrics, write_mot
from detkit.track.sources import open_frames
from detkit.utils.output_names import clobbered

__all__ = [
    "SCORE_FLOOR",
    "letterbox",
    "output_files",
    "output_stem",
    "recorded_outputs",
    "summarize_tracks",
    "track_video",
]

SCORE_FLOOR = 0.001  # the lowest score asked of the detector: the best score is known when nothing reaches the tracker


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


def recorded_outputs(json_file: str | os.PathLike) -> set[str]:
    """The file names an earlier :func:`track_video` wrote beside its JSON ``json_file`` (its ``outputs``; a JSON
    of a detkit before that record: ``<stem>.txt``, ``.json``, ``.mp4``), so a new run may replace them. Empty
    when ``json_file`` is missing or is not a track JSON: then no file of that name is the tool's own."""
    path = Path(json_file)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    if not isinstance(data, dict) or not {"tracker", "per_frame"} <= set(data):
        return set()
    listed = data.get("outputs")
    if isinstance(listed, list):
        return {Path(n).name for n in listed if isinstance(n, str) and n} | {path.name}
    return {f"{path.stem}{ext}" for ext in (".txt", ".json", ".mp4")}


def letterbox(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """``rgb`` scaled to fit ``width`` x ``height`` with its aspect ratio kept, centred on black."""
    h, w = rgb.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    out = np.zeros((height, width, 3), np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out[top : top + new_h, left : left + new_w] = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return out


class VideoOut:
    """An mp4v writer into a temporary file, renamed to ``path`` by :meth:`close` (never a half-written video).

    Every frame is written at the first frame's size (``width`` x ``height``): a frame of another size is
    letterboxed to it (OpenCV's writer would drop it), with one warning per video.
    """

    def __init__(self, path: Path, fps: float, width: int, height: int):
        self.path, self.tmp = path, path.with_name(f".{path.stem}.tmp{path.suffix}")
        self.size, self.resized = (width, height), 0
        self.writer = cv2.VideoWriter(os.fspath(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not self.writer.isOpened():
            raise OSError(f"OpenCV cannot write video {path} (codec mp4v missing?)")

    def write(self, rgb: np.ndarray) -> None:
        """Append one RGB uint8 [H,W,3] frame (letterboxed to the video's size when it differs)."""
        if (rgb.shape[1], rgb.shape[0]) != self.size:
            if not self.resized:
                warnings.warn(
                    f"{self.path.name}: frames of another size than the first ({rgb.shape[1]}x{rgb.shape[0]}, not "
                    f"{self.size[0]}x{self.size[1]}) are letterboxed to it in the drawn video; the MOT and JSON "
                    "boxes stay in each frame's own pixels",
                    stacklevel=2,
                )
            self.resized += 1
            rgb = letterbox(rgb, *self.size)
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
    """Detect, link, draw one source (``options``: batch_size, nms_iou, fps, classes). The detector is asked down
    to :data:`SCORE_FLOOR` only to know the best score; the tracker gets the boxes at its own threshold and up.
    Returns the per-frame results, the best detection score (None without any) and the unreadable frames
    (numbers from 1: no detections; the previous frame, or a black one, in the drawn video)."""
    thr = detection_thr(tracker)
    results, best, unreadable, previous = [], None, [], None
    frames = open_frames(source, options["fps"])[1]
    floor = min(thr, SCORE_FLOOR)
    for image, det in detect_frames(
        model, frames, floor, options["batch_size"], options["nms_iou"], options["classes"]
    ):
        if len(det["scores"]):
            top = float(det["scores"].max())
            best = top if best is None else max(best, top)
        keep = det["scores"] >= thr
        results.append(tracker.update(det["boxes"][keep], det["scores"][keep], det["labels"][keep]))
        if image is None:
            unreadable.append(len(results))
        if out is not None:
            if image is None:
                image = previous if previous is not None else np.zeros((out.size[1], out.size[0], 3), np.uint8)
            out.write(drawer.draw(image, results[-1]))
            previous = image
        bar.update(1)
    return results, best, unreadable


def _prepare(source, out_dir, gt_file, stem: str | None, draw: bool) -> tuple[str, dict[str, Path]]:
    """The outputs' name and files (:func:`output_files`), after checking that none replaces ``source`` or
    ``gt_file`` (a ValueError, before anything is written); ``out_dir`` is made."""
    stem = output_stem(source) if stem is None else stem
    files = output_files(out_dir, stem, draw)
    clash = clobbered(files.values(), [p for p in (source, gt_file) if p is not None and Path(p).is_file()])
    if clash is not None:
        raise ValueError(f"the output {clash[0]} would replace the input {clash[1]}; choose another out_dir")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return stem, files


def _track_drawn(model: nn.Module, source, linker, files: dict, info: dict, options: dict, progress: bool, stem):
    """:func:`_run` with the drawn video (``files`` has ``video``) and a progress bar; a failure leaves no video.
    Returns :func:`_run`'s results and the video's path (None without one)."""
    from tqdm import tqdm

    video = VideoOut(files["video"], float(info["fps"]), info["width"], info["height"]) if "video" in files else None
    bar = tqdm(total=info["frame_count"], desc=f"track {stem}", unit="frame", disable=None if progress else True)
    try:
        drawer = TrackDrawer(model.class_names, options["trail"])
        ran = _run(model, Path(source), linker, video, drawer, bar, options)
    except BaseException:
        if video is not None:
            video.discard()
        raise
    finally:
        bar.close()
    if video is not None:
        video.close()
    return ran, video.path if video is not None else None


def _write_json(path: Path, summary: dict, results: Sequence[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({**summary, "per_frame": _per_frame(results)}, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def track_video(
    model: nn.Module,
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    tracker: str | Any = "bytetrack",
    tracker_options: dict[str, Any] | None = None,
    gt_file: str | os.PathLike | None = None,
    min_iou: float = 0.5,
    batch_size: int = 1,
    nms_iou: float | None = 0.7,
    draw: bool = True,
    trail: int = 30,
    progress: bool = True,
    stem: str | None = None,
    fps: float | None = None,
    classes: Any = None,
) -> dict:
    """Track one video file or folder of frames with ``model``; write the outputs (module docstring).

    ``tracker`` and ``tracker_options`` as :func:`detkit.track.build_tracker` takes them; ``nms_iou`` and
    ``classes`` (names or indices; None: every class) as :func:`detkit.track.track`; ``min_iou`` the IoU of a true
    positive against ``gt_file``; ``stem`` the outputs' name (:func:`output_files`; None: :func:`output_stem` of
    ``source``); ``fps`` the frame rate of a folder of frames (None: its ``seqinfo.ini``'s, else 25;
    :func:`detkit.track.sources.folder_fps`).

    An output that would replace ``source`` or ``gt_file`` is a ``ValueError``, before anything is written; so is
    a class that the model does not have.

    Returns a summary: ``source``, ``stem``, ``frames``, ``tracks`` (:func:`summarize_tracks`), ``boxes``,
    ``max_score`` (the best detection score of the tracked classes, down to :data:`SCORE_FLOOR`; None without
    any), ``unreadable`` (the frames, from 1, that could not be read: no detections), ``mot``, ``json``,
    ``video`` (None without ``draw``) and ``metrics`` (with ``gt_file``: :func:`detkit.track.mot_metrics`).
    """
    keep = resolve_classes(classes, model_class_names(model))
    linker = build_tracker(tracker, **dict(tracker_options or {}))
    info, _ = open_frames(source, fps)  # the source is readable, and its size and rate
    stem, files = _prepare(source, out_dir, gt_file, stem, draw)
    options = {"batch_size": batch_size, "nms_iou": nms_iou, "fps": fps, "classes": keep, "trail": trail}
    (results, max_score, unreadable), video = _track_drawn(model, source, linker, files, info, options, progress, stem)
    mot = write_mot(files["mot"], results)
    name = tracker if isinstance(tracker, str) else type(tracker).__name__
    chosen = None if keep is None else [model.class_names[i] for i in keep]
    summary = {"source": str(source), "tracker": name, "options": {**linker.options(), "nms_iou": nms_iou}}
    summary["options"]["classes"] = chosen
    summary.update(_describe(results, model.class_names, info, max_score), unreadable=unreadable)
    summary["metrics"] = mot_metrics(gt_file, mot, min_iou) if gt_file is not None else None
    # the record of what track wrote here: this run's files, and an earlier run's still there (a drawn video)
    earlier = {n for n in recorded_outputs(files["json"]) if (Path(out_dir) / n).is_file()}
    summary["outputs"] = sorted(earlier | {p.name for p in files.values()})
    _write_json(files["json"], summary, results)
    return {**summary, "stem": stem, "mot": mot, "json": files["json"], "video": video}


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
