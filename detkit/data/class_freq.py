"""Per-class loss weights from the training set's class counts (``class_weight: balanced | sqrt``).

Counts come from the annotations, never the images (:func:`detkit.data.repeat_factors.image_labels_of`): objects
per class for detection datasets, images per class for classification datasets (one label each). With ``n_c``
the count of class c and ``n`` the total:

- ``balanced``: ``w_c = n / (C' * n_c)``, scikit-learn's ``class_weight='balanced'`` (``C'`` the classes with
  objects; all C when every class has some);
- ``sqrt``: ``w_c ∝ n_c ** -0.5`` (``(n_max / n_c) ** 0.5`` up to a factor), a milder correction.

Both are normalised so that the mean weight over the training objects is 1 (``sum_c n_c w_c = n``): the
classification loss keeps its scale (background terms keep weight 1), only its share moves to rare classes.
A class without training objects gets the largest weight of the others (its value hardly matters: it has no
positive term to weigh), and the report marks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from detkit.config_rules import CLASS_WEIGHT_MODES
from detkit.data.repeat_factors import image_labels_of

__all__ = ["CLASS_WEIGHT_MODES", "ClassWeights", "class_counts"]

_POWER = {"balanced": 1.0, "sqrt": 0.5}


def class_counts(dataset: Any, num_classes: int, key: str = "class_weight") -> tuple[np.ndarray, str]:
    """Count int64 [C] of each class in ``dataset`` and its unit ('objects' or 'images'), from annotations only.

    ``key`` (the config key that asked) names the problem when the dataset cannot tell its classes unread.
    """
    fix = f"give {key} as a list of {num_classes} numbers"
    labels = image_labels_of(dataset, key=key, fix=fix)
    unit = "objects" if callable(getattr(dataset, "get_ann_info", None)) else "images"
    flat = np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)
    if flat.size and (flat.min() < 0 or flat.max() >= num_classes):
        raise ValueError(f"{key}: labels must be 0..{num_classes - 1}, found {int(flat.min())}..{int(flat.max())}")
    return np.bincount(flat, minlength=num_classes).astype(np.int64), unit


class ClassWeights:
    """The weights of one mode from per-class counts.

    Attributes: ``counts`` int64 [C], ``weights`` float64 [C] (mean over the counted objects 1), ``mode``,
    ``unit`` ('objects' | 'images').

    Raises:
        ValueError: an unknown mode, or no class has any count.
    """

    def __init__(self, counts: Sequence[int], mode: str, unit: str = "objects"):
        if mode not in _POWER:
            raise ValueError(f"class_weight mode must be one of {', '.join(CLASS_WEIGHT_MODES)}, got {mode!r}")
        self.counts = np.asarray(counts, dtype=np.int64)
        self.mode, self.unit = mode, unit
        seen = self.counts > 0
        if not seen.any():
            raise ValueError(f"class_weight {mode!r}: the training set has no {unit} of any class to count")
        raw = np.zeros(len(self.counts), dtype=np.float64)
        raw[seen] = self.counts[seen].astype(np.float64) ** -_POWER[mode]
        raw *= self.counts.sum() / float((self.counts * raw).sum())  # sum_c n_c w_c = n
        raw[~seen] = raw[seen].max()
        self.weights = raw

    def as_list(self) -> list[float]:
        """The weights as plain floats rounded to 4 decimals (what config.yaml and the model get)."""
        return [round(float(w), 4) for w in self.weights]

    def report(self, class_names: Sequence[str]) -> list[str]:
        """Lines for the training log: count, share and weight per class (a class without any marked)."""
        total = max(int(self.counts.sum()), 1)
        lines = [f"{'class':<16} {self.unit:>7} {'share':>7} {'weight':>7}"]
        for c, name in enumerate(class_names):
            note = "  (none: the largest weight)" if self.counts[c] == 0 else ""
            lines.append(
                f"{name[:16]:<16} {self.counts[c]:>7d} {self.counts[c] / total:>7.3f} {self.weights[c]:>7.3f}{note}"
            )
        return lines
