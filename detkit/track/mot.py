"""MOT Challenge text files and the CLEAR-MOT / identity metrics of a tracking result (the motmetrics package).

A line of a result file is ``frame,id,x,y,w,h,score,-1,-1,-1``: frames count from 1, ``x, y`` is the box's
top-left corner in detkit's pixel coordinates (as ByteTrack writes them), ``w, h`` its size. A ground-truth
file has the same first six columns; a 7th column of 0 marks a row to ignore (MOT16/17's "consider" flag),
further columns (class, visibility) are not used.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou

__all__ = ["METRICS", "check_frames", "mot_lines", "mot_metrics", "read_gt", "read_mot", "write_mot"]

# motmetrics' name -> detkit's key (values of MOTA, IDF1, precision and recall in 0..1, the others counts)
METRICS = {
    "mota": "mot/MOTA",
    "idf1": "mot/IDF1",
    "num_switches": "mot/IDSW",
    "motp": "mot/MOTP",
    "idp": "mot/IDP",
    "idr": "mot/IDR",
    "precision": "mot/precision",
    "recall": "mot/recall",
    "num_false_positives": "mot/FP",
    "num_misses": "mot/FN",
    "num_fragmentations": "mot/Frag",
    "mostly_tracked": "mot/MT",
    "mostly_lost": "mot/ML",
    "num_unique_objects": "mot/GT_ids",
    "num_objects": "mot/GT_boxes",
}
RATIOS = {"mota", "idf1", "motp", "idp", "idr", "precision", "recall"}


def mot_lines(frames: Sequence[dict]) -> list[str]:
    """MOT lines of per-frame tracks (dicts with ``ids``, ``boxes`` [T,4] xyxy, ``scores``); frame i is i + 1."""
    lines = []
    for index, tracks in enumerate(frames):
        for tid, box, score in zip(tracks["ids"].tolist(), tracks["boxes"].tolist(), tracks["scores"].tolist()):
            x0, y0, x1, y1 = box
            lines.append(f"{index + 1},{tid},{x0:.2f},{y0:.2f},{x1 - x0:.2f},{y1 - y0:.2f},{score:.4f},-1,-1,-1")
    return lines


def write_mot(path: str | os.PathLike, frames: Sequence[dict]) -> Path:
    """Write :func:`mot_lines` to ``path`` (a temporary file renamed into place); returns the path."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    lines = mot_lines(frames)
    tmp.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_mot(path: str | os.PathLike, what: str = "MOT file") -> np.ndarray:
    """The numbers of a MOT text file: float64 [N,C] (C >= 6; commas or spaces between fields; blank lines skipped).

    Rows shorter than the widest are padded with MOT's defaults: 1 in the 7th column (the ground truth's
    "consider" flag, a result's score), -1 after it; so a 6-number row among 9-number rows counts as considered.

    Raises:
        ValueError: a line with fewer than 6 numbers or a field that is not a number (names the file and line).
    """
    path = Path(path)
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        fields = line.replace(",", " ").split()
        if not fields:
            continue
        try:
            values = [float(v) for v in fields]
        except ValueError:
            values = []
        if len(values) < 6:
            raise ValueError(
                f"{what} {path}, line {number}: {line.strip()[:60]!r} is not a MOT line; expected "
                "'frame,id,x,y,w,h[,conf,...]' (numbers)"
            )
        rows.append(values)
    width = max((len(r) for r in rows), default=6)
    pad = ([1.0] + [-1.0] * (width - 7))[: width - 6]  # the defaults of columns 7, 8, ...
    return np.array([r + pad[len(r) - 6 :] for r in rows], dtype=np.float64).reshape(-1, width)


def read_gt(path: str | os.PathLike) -> np.ndarray:
    """The rows of a MOT ground truth to score: :func:`read_mot` without the rows whose 7th field
    ("consider", MOT16/17) is 0.

    Raises:
        ValueError: the file is not a MOT table, or no row is left (empty, or every row flagged 0).
    """
    rows = read_mot(path, "ground truth")
    kept = rows[rows[:, 6] != 0] if rows.shape[1] >= 7 else rows
    if len(kept) == 0:
        why = "the file has no line" if len(rows) == 0 else f"each of its {len(rows)} lines has consider (7th field) 0"
        raise ValueError(f"ground truth {path} holds no box to score: {why}; give a MOT file 'frame,id,x,y,w,h,1,...'")
    return kept


def check_frames(gt_rows: np.ndarray, hyp_rows: np.ndarray, gt_file: str | os.PathLike) -> list[str]:
    """Warn (and return the warnings) when the ground truth has a frame 0 (MOT frames count from 1), or when the
    frame ranges of ground truth and result overlap by less than half of the shorter one (another video's?)."""
    messages = []
    gt_frames, hyp_frames = gt_rows[:, 0], hyp_rows[:, 0]
    if (gt_frames < 1).any():
        messages.append(
            f"ground truth {gt_file} has frame {int(gt_frames.min())}, but MOT frames count from 1 (as detkit's "
            "results do): its frames are one behind; add 1 to them"
        )
    if len(hyp_frames):
        (g0, g1), (h0, h1) = (
            (int(gt_frames.min()), int(gt_frames.max())),
            (int(hyp_frames.min()), int(hyp_frames.max())),
        )
        shared = max(0, min(g1, h1) - max(g0, h0) + 1)
        if shared < 0.5 * min(g1 - g0 + 1, h1 - h0 + 1):
            messages.append(
                f"ground truth {gt_file} covers frames {g0}-{g1} and the result frames {h0}-{h1}: they barely "
                "overlap; is it this video's ground truth, numbered from 1?"
            )
    for message in messages:
        warnings.warn(message, stacklevel=3)
    return messages


def _boxes_by_frame(rows: np.ndarray, what: str, path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """frame -> (ids int64 [K], boxes float64 [K,4] xyxy); one box per (frame, id)."""
    pairs = rows[:, :2].astype(np.int64)
    if len({tuple(p) for p in pairs.tolist()}) < len(pairs):
        raise ValueError(f"{what} {path} repeats a (frame, id) pair; expected one line per object and frame")
    out = {}
    for f in np.unique(pairs[:, 0]).tolist():
        sel = rows[pairs[:, 0] == f]
        xyxy = np.concatenate([sel[:, 2:4], sel[:, 2:4] + sel[:, 4:6]], axis=1)
        out[int(f)] = (sel[:, 1].astype(np.int64), xyxy)
    return out


def mot_metrics(gt_file: str | os.PathLike, result_file: str | os.PathLike, min_iou: float = 0.5) -> dict:
    """MOTA, IDF1, ID switches and the other CLEAR-MOT / identity figures of ``result_file`` against ``gt_file``.

    Boxes match when their IoU is at least ``min_iou`` (MOT Challenge: 0.5); ground-truth rows whose 7th field
    is 0 are dropped (:func:`read_gt`); a frame 0 in the ground truth, or frame ranges that barely overlap, are
    warned about (:func:`check_frames`). The events and figures are
    motmetrics' (``MOTAccumulator``, ``metrics.create().compute``); the IoU between boxes is torchvision's
    (motmetrics 1.4's own IoU helper calls ``np.asfarray``, which NumPy 2 removed). Returns a dict keyed as
    :data:`METRICS` (``mot/MOTA``, ``mot/IDF1``, ``mot/IDSW``, ...); floats for ratios, ints for counts.

    Raises:
        ValueError: a file is not a MOT table, or the ground truth holds no box.
    """
    import motmetrics as mm

    gt_rows, hyp_rows = read_gt(gt_file), read_mot(result_file, "tracking result")
    check_frames(gt_rows, hyp_rows, gt_file)
    gt = _boxes_by_frame(gt_rows, "ground truth", gt_file)
    hyp = _boxes_by_frame(hyp_rows, "tracking result", result_file)
    acc = mm.MOTAccumulator()
    empty = (np.zeros(0, np.int64), np.zeros((0, 4)))
    for f in sorted(set(gt) | set(hyp)):
        (gt_ids, gt_boxes), (hyp_ids, hyp_boxes) = gt.get(f, empty), hyp.get(f, empty)
        iou = box_iou(torch.from_numpy(gt_boxes), torch.from_numpy(hyp_boxes)).numpy()
        acc.update(gt_ids.tolist(), hyp_ids.tolist(), np.where(iou >= min_iou, 1.0 - iou, np.nan), frameid=f)
    summary = mm.metrics.create().compute(acc, metrics=list(METRICS), name="video")
    out = {}
    for name, key in METRICS.items():
        value = summary[name].iloc[0]
        out[key] = (None if np.isnan(value) else float(value)) if name in RATIOS else int(value)
    return out  # a ratio without any box to count (MOTP with no match) is None
