"""The pointing game: do a detector's maps peak on the objects? And the same for randomised weights (a sanity
check after Adebayo et al., 2018: maps that look alike for a trained and a random model explain nothing).

For each ground-truth object the map of the model's output matched to it (the candidate box of highest IoU,
scored on the object's class: :class:`~detkit.explain.targets.DetectionTarget`) is computed; a hit is a map
whose maximum (a pixel centre) lies inside the object's box. A flat map (no gradient reached the layer, or the
method's ReLU zeroed it) is a miss.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from detkit.explain.layers import ExplainError
from detkit.explain.session import cam_method, cam_session
from detkit.explain.targets import DetectionTarget

__all__ = ["pointing_game", "pointing_hits", "randomized_copy"]


def randomized_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` whose every module with ``reset_parameters`` (convolutions, linear layers,
    norms: their running statistics too) is re-initialised, seeded by ``seed``; ``model`` and the global random
    state are left as they were."""
    random_model = copy.deepcopy(model)
    device = next(random_model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(int(seed))
        for module in random_model.modules():
            if module is not random_model and callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
    return random_model


def _hits(heatmaps: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """bool [N]: the maximum of map i (its first pixel when several) inside box i (xyxy, image pixels)."""
    out = np.zeros(len(boxes), bool)
    for i, (heat, (x1, y1, x2, y2)) in enumerate(zip(heatmaps, boxes)):
        if heat.max() <= heat.min():
            continue  # flat: points nowhere
        y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
        out[i] = x1 <= x + 0.5 <= x2 and y1 <= y + 0.5 <= y2
    return out


def pointing_hits(
    model: nn.Module,
    image: np.ndarray,
    boxes: Any,
    labels: Any,
    method: str = "gradcam",
    target_layer: str | None = None,
) -> np.ndarray:
    """bool [N]: whether each ground-truth object's map peaks inside its box.

    Args:
        model: a detector (``TwoStageDetector`` or ``OneStageDetector``).
        image: RGB uint8 [H,W,3]; boxes: [N,4] xyxy in its pixels; labels: [N] the model's class indices.
    """
    cam_method(method)
    boxes = torch.as_tensor(np.asarray(boxes, np.float32)).reshape(-1, 4)
    labels = torch.as_tensor(np.asarray(labels, np.int64)).reshape(-1)
    if len(boxes) == 0:
        return np.zeros(0, bool)
    with cam_session(model, image, target_layer) as session:
        if session.adapter.kind != "detector":
            raise ExplainError(f"the pointing game needs a detector; got a {type(model).__name__}")
        in_input = session.geometry.boxes_to_input(boxes)
        heatmaps = session.heatmaps(method, [DetectionTarget(b, int(c)) for b, c in zip(in_input, labels)])
    return _hits(heatmaps, boxes.numpy())


def pointing_game(
    model: nn.Module,
    samples: Iterable[tuple[np.ndarray, Any, Any]],
    method: str = "gradcam",
    target_layer: str | None = None,
) -> dict:
    """Share of ground-truth objects whose map peaks inside their box, over ``(image, boxes, labels)`` samples
    (see :func:`pointing_hits`). Returns ``{"hits", "total", "share"}`` (share NaN without objects)."""
    hits = total = 0
    for image, boxes, labels in samples:
        found = pointing_hits(model, image, boxes, labels, method, target_layer)
        hits, total = hits + int(found.sum()), total + len(found)
    return {"hits": hits, "total": total, "share": hits / total if total else float("nan")}
