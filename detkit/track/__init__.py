"""Multi-object tracking: a detector's detections linked into tracks across the frames of a video.

``detkit.track(model, frames, tracker="bytetrack")`` returns per frame ``ids``, ``boxes``, ``scores``,
``labels`` (``classes=["person", "car"]``: those classes alone are tracked). Trackers: :class:`ByteTracker`
(two association passes, a Kalman filter, lost tracks kept a while) and :class:`IoUTracker` (IoU alone, the
baseline). ``write_mot`` / ``mot_metrics`` write MOT Challenge text
files and score them with the motmetrics package (MOTA, IDF1, ID switches). See docs/tracking.md.
"""

import sys
from types import ModuleType

from detkit.track.api import TRACKERS, build_tracker, link_detections, merge_duplicates, track
from detkit.track.bytetrack import ByteTracker
from detkit.track.classes import resolve_classes
from detkit.track.draw import TrackDrawer
from detkit.track.iou_tracker import IoUTracker
from detkit.track.kalman import KalmanBoxFilter
from detkit.track.mot import METRICS, mot_lines, mot_metrics, write_mot
from detkit.track.sources import open_frames

__all__ = [
    "METRICS",
    "TRACKERS",
    "ByteTracker",
    "IoUTracker",
    "KalmanBoxFilter",
    "TrackDrawer",
    "build_tracker",
    "link_detections",
    "merge_duplicates",
    "mot_lines",
    "mot_metrics",
    "open_frames",
    "resolve_classes",
    "track",
    "write_mot",
]


class _TrackPackage(ModuleType):
    """``detkit.track(...)`` is :func:`track` even after ``import detkit.track.x`` made ``detkit.track`` this
    package (importing a submodule sets the parent's attribute to the package)."""

    def __call__(self, *args, **kwargs):
        return track(*args, **kwargs)


sys.modules[__name__].__class__ = _TrackPackage
