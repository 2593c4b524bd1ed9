"""MOT Challenge text files and the CLEAR-MOT / identity metrics of a tracking result (the motmetrics package).

A line of a result file is ``frame,id,x,y,w,h,score,-1,-1,-1``: frames count from 1, ``x, y`` is the box's
top-left corner in detkit's pixel coordinates (as ByteTrack writes them), ``w, h`` its size. A ground-truth
file has the same first six columns; a 7th column of 0 marks a row to ignore (MOT16/17's "consider" flag),
further columns (class, visibility) are not used.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["METRICS", "mot_lines", "mot_metrics", "write_mot"]

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


def _load(path: str | os.PathLike, what: str, ground_truth: bool):
    """A MOT file as motmetrics' DataFrame; a file it cannot parse is a ValueError naming it and the format."""
    import motmetrics as mm

    path = Path(path)
    try:
        table = mm.io.loadtxt(os.fspath(path), fmt="mot15-2D", min_confidence=-1)
    except Exception as e:  # noqa: BLE001  (pandas raises several types for a file that is not a MOT table)
        raise ValueError(
            f"{what} {path} is not a MOT-format text file ({type(e).__name__}: {e}); expected lines "
            "'frame,id,x,y,w,h,conf,...'"
        ) from None
    cols = ["X", "Y", "Width", "Height"]
    if table[cols].isna().to_numpy().any() or not table.index.is_unique:
        raise ValueError(
            f"{what} {path}: some lines lack the columns x,y,w,h or repeat a (frame, id) pair; expected lines "
            "'frame,id,x,y,w,h,conf,...' with one line per object and frame"
        )
    if ground_truth:
        table = table[table["Confidence"].isna() | (table["Confidence"] != 0)]
    return table


def mot_metrics(gt_file: str | os.PathLike, result_file: str | os.PathLike, min_iou: float = 0.5) -> dict:
    """MOTA, IDF1, ID switches and the other CLEAR-MOT / identity figures of ``result_file`` against ``gt_file``.

    Boxes match when their IoU is at least ``min_iou`` (MOT Challenge: 0.5). Returns a dict keyed as
    :data:`METRICS` (``mot/MOTA``, ``mot/IDF1``, ``mot/IDSW``, ...); floats for ratios, ints for counts.

    Raises:
        ValueError: a file is not a MOT table, or the ground truth holds no box.
    """
    import motmetrics as mm

    gt = _load(gt_file, "ground truth", True)
    if len(gt) == 0:
        raise ValueError(f"ground truth {gt_file} holds no box to track (every line empty or flagged 0)")
    empty = not Path(result_file).read_text(encoding="utf-8", errors="replace").strip()
    result = gt.iloc[:0] if empty else _load(result_file, "tracking result", False)  # no track at all: all missed
    acc = mm.utils.compare_to_groundtruth(gt, result, "iou", distth=1.0 - min_iou)
    summary = mm.metrics.create().compute(acc, metrics=list(METRICS), name="video")
    out = {}
    for name, key in METRICS.items():
        value = summary[name].iloc[0]
        out[key] = float(value) if name in ("mota", "idf1", "motp", "idp", "idr", "precision", "recall") else int(value)
    return out
