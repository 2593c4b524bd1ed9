"""Association of tracks and detections: an IoU cost (torchvision's ``box_iou``) and an optimal assignment
(SciPy's ``linear_sum_assignment``) that leaves pairs above a cost limit unmatched."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_iou

__all__ = ["assign", "iou_cost"]

INFEASIBLE = 1e6  # cost of a pair above the limit: chosen only when nothing else is left, then dropped


def iou_cost(track_boxes: np.ndarray, det_boxes: np.ndarray, det_scores: np.ndarray | None = None) -> np.ndarray:
    """``1 - IoU`` between tracks and detections; with ``det_scores``, ``1 - IoU * score`` (ByteTrack's score
    fusion: a confident detection is the cheaper match).

    Args: track_boxes float [T,4] xyxy, det_boxes float [D,4] xyxy, det_scores float [D] or None.
    Returns: cost float [T,D] in [0, 1].
    """
    if len(track_boxes) == 0 or len(det_boxes) == 0:
        return np.zeros((len(track_boxes), len(det_boxes)))
    iou = box_iou(torch.as_tensor(track_boxes, dtype=torch.float64), torch.as_tensor(det_boxes, dtype=torch.float64))
    iou = iou.numpy()
    if det_scores is not None:
        iou = iou * np.asarray(det_scores, dtype=np.float64)[None, :]
    return 1.0 - iou


def assign(cost: np.ndarray, max_cost: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """The assignment of rows to columns with the least total cost, among pairs of cost <= ``max_cost``.

    Pairs above the limit cost :data:`INFEASIBLE`, so the solver first maximises the number of allowed pairs
    (as ``lap.lapjv(..., cost_limit)`` in ByteTrack does) and never returns a forbidden one.

    Args: cost float [R,C]; max_cost the largest cost of a match.
    Returns: (matches as (row, col) pairs, unmatched rows, unmatched columns), each sorted.
    """
    rows, cols = cost.shape
    if rows == 0 or cols == 0:
        return [], list(range(rows)), list(range(cols))
    limited = np.where(cost <= max_cost, cost, INFEASIBLE)
    r, c = linear_sum_assignment(limited)
    matches = [(int(i), int(j)) for i, j in zip(r, c) if cost[i, j] <= max_cost]
    matched_rows = {i for i, _ in matches}
    matched_cols = {j for _, j in matches}
    return (
        matches,
        [i for i in range(rows) if i not in matched_rows],
        [j for j in range(cols) if j not in matched_cols],
    )
