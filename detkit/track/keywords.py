"""The keyword arguments of ``detkit.track``: the CLI's names (``score_thr``), the tracker's own options, and
Ultralytics' ``model.track(...)`` keywords (``conf``, ``iou``, ``persist``, ...) answered with detkit's."""

from __future__ import annotations

import inspect
from pathlib import PurePath
from typing import Any

__all__ = ["ULTRALYTICS_TRACK_KEYWORDS", "tracker_keywords"]

_PREDICT_LIKE = ("imgsz", "device", "max_det", "half", "augment")  # answered as detkit.predict answers them
# Ultralytics' model.track keywords -> detkit's way to say the same (docs/tracking.md, "Library")
ULTRALYTICS_TRACK_KEYWORDS = {
    "conf": "score_thr= (the tracker's confident detections; low_thr= for ByteTrack's second pass)",
    "iou": "nms_iou= (the class-agnostic NMS before linking; match_iou= the tracker's matching; the detector's "
    "own NMS IoU is the config's model.head.nms_thr)",
    "persist": "pass a tracker object (tracker=ByteTracker()) to keep the ids from one call to the next",
    "source": "the frames argument: detkit.track(model, frames)",
    "batch": "batch_size=",
    "agnostic_nms": "nms_iou= (a class-agnostic NMS runs before linking, at 0.7 by default)",
    "verbose": "not offered: track prints nothing (the CLI, `detkit track`, shows a progress bar)",
    "show": "not offered: draw with detkit.track.TrackDrawer(model.class_names).draw(rgb_frame, result)",
    "save": "not offered: `detkit track - CKPT VIDEO --out-dir DIR` writes the drawn video, a MOT text file and a JSON",
    "save_txt": "detkit.track.write_mot('tracks.txt', results) writes the MOT text file",
    "vid_stride": "not offered: pass every n-th frame yourself, e.g. itertools.islice(frames, 0, None, n) (a video "
    "file's frames: detkit.track.open_frames(path)[1])",
}


def _answers() -> dict[str, str]:
    from detkit.inference.api import ULTRALYTICS_KEYWORDS

    return {**{k: ULTRALYTICS_KEYWORDS[k] for k in _PREDICT_LIKE}, **ULTRALYTICS_TRACK_KEYWORDS}


def _options_of(tracker: Any) -> set[str]:
    """The keyword arguments a tracker class (or the class of a tracker object) takes."""
    cls = tracker if isinstance(tracker, type) else type(tracker)
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = inspect.signature(cls.__init__).parameters
    return {n for n, p in params.items() if n != "self" and p.kind in named}


def _unknown(kwargs: dict, options: set[str], tracker_name: str) -> TypeError:
    """One TypeError for every keyword neither ``track`` nor the tracker takes, with detkit's form where there
    is one."""
    answers = _answers()
    lines = [
        f"  {k}: {answers[k]}" if k in answers else f"  {k}: not an argument of track nor of {tracker_name}"
        for k in kwargs
    ]
    return TypeError(
        f"track() got unexpected keyword argument(s) {', '.join(map(repr, kwargs))}; it takes model, frames, tracker, "
        f"batch_size, nms_iou, stream, classes, channel_order, score_thr and {tracker_name}'s options "
        f"({', '.join(sorted(options))}):\n" + "\n".join(lines)
    )


def tracker_keywords(tracker: Any, trackers: dict, score_thr: float | None, kwargs: dict) -> dict:
    """The tracker's keyword arguments from ``track``'s: ``score_thr`` (the CLI's ``--score-thr``) is ByteTrack's
    ``high_thr`` and the IoU linker's ``score_thr``; a keyword neither takes is a TypeError naming detkit's form
    of each (Ultralytics' ``conf``, ``iou``, ``persist``, ...: :data:`ULTRALYTICS_TRACK_KEYWORDS`).

    ``tracker``: a name of ``trackers`` or a tracker object (its options are then refused by ``build_tracker``).
    """
    if isinstance(tracker, (str, PurePath)) and str(tracker).lower().endswith((".yaml", ".yml")):
        name = PurePath(str(tracker)).stem.lower()
        offer = "tracker='bytetrack'" if name != "botsort" else "BoT-SORT is not in detkit; tracker='bytetrack'"
        raise ValueError(
            f"track: tracker={str(tracker)!r} is Ultralytics' tracker file; detkit's trackers are named: {offer} "
            "(or 'iou'), its settings as keywords (score_thr=, low_thr=, track_buffer=)"
        )
    cls = trackers.get(tracker) if isinstance(tracker, str) else type(tracker)
    options = _options_of(cls) if cls is not None else set()
    unknown = {k: v for k, v in kwargs.items() if k not in options}
    if unknown and cls is not None:
        raise _unknown(unknown, options, cls.__name__)
    if score_thr is None:
        return dict(kwargs)
    if not isinstance(tracker, str):  # a built tracker: build_tracker refuses options, named as given
        return {**kwargs, "score_thr": score_thr}
    main = "high_thr" if "high_thr" in options else "score_thr"
    if main in kwargs and main != "score_thr":
        raise TypeError(f"track: score_thr and {main} are one setting ({cls.__name__}'s {main}); give one of them")
    low = kwargs.get("low_thr", _default(cls, "low_thr"))
    if main == "high_thr" and low is not None and score_thr < low:
        raise ValueError(
            f"track: score_thr {score_thr:g} is below ByteTrack's low_thr {low:g} (its second pass): give low_thr= at "
            f"or below it too, e.g. score_thr={score_thr:g}, low_thr={score_thr / 2:g}"
        )
    return {**kwargs, main: score_thr}


def _default(cls: type, name: str) -> Any:
    """The default of the keyword ``name`` of ``cls`` (None without one)."""
    param = inspect.signature(cls.__init__).parameters.get(name)
    return None if param is None or param.default is inspect.Parameter.empty else param.default
