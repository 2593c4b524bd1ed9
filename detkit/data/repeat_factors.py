"""Repeat-factor sampling (LVIS; Gupta et al. 2019): images of rare classes are drawn more often.

For a class ``c`` present in a fraction ``f_c`` of the training images, ``r_c = max(1, sqrt(t / f_c))`` for a
threshold ``t``; an image repeats ``r_i = max(r_c over its classes)`` times per epoch (1 without objects).
A fractional ``r_i`` is rounded stochastically each epoch (``floor`` plus one with probability ``frac``), so
the expected number of draws of image ``i`` per epoch is exactly ``r_i``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["RepeatFactors", "image_labels_of", "repeat_factors", "repeat_indices"]


def image_labels_of(
    dataset: Any, key: str = "data.repeat_threshold", fix: str = "set data.repeat_threshold: 0"
) -> list[np.ndarray]:
    """The class labels (0..C-1) of every item of ``dataset``, read without decoding an image.

    Uses ``dataset.get_ann_info(i)['labels']`` (detection datasets, also through wrappers that forward it:
    one label per object) or ``dataset.labels`` (one label per item: classification datasets).

    Raises:
        ValueError: the dataset offers neither (names its type, the config ``key`` that asked and the ``fix``).
    """
    if callable(getattr(dataset, "get_ann_info", None)):
        return [np.asarray(dataset.get_ann_info(i)["labels"], dtype=np.int64) for i in range(len(dataset))]
    labels = getattr(dataset, "labels", None)
    if labels is not None and len(labels) == len(dataset):
        return [np.asarray([int(lab)], dtype=np.int64) for lab in labels]
    raise ValueError(
        f"{key}: {type(dataset).__name__} does not say which classes an image holds without "
        f"reading it (no get_ann_info or labels); use a CocoDataset-like dataset or {fix}"
    )


class RepeatFactors:
    """Per-class image frequencies and the resulting repeat factors of a dataset's images.

    Attributes: ``image_factors`` float64 [N] (r_i >= 1), ``class_frequency`` float64 [C] (f_c: share of images
    holding class c), ``class_factors`` float64 [C] (r_c), ``class_images`` int64 [C] (images holding c).
    """

    def __init__(self, labels: Sequence[np.ndarray], num_classes: int, threshold: float):
        if not threshold > 0:
            raise ValueError(f"repeat threshold must be > 0, got {threshold}")
        n = max(len(labels), 1)
        present = np.zeros((len(labels), num_classes), dtype=bool)
        for i, lab in enumerate(labels):
            present[i, np.asarray(lab, dtype=np.int64)] = True
        self.class_images = present.sum(0).astype(np.int64)
        self.class_frequency = self.class_images / n
        with np.errstate(divide="ignore"):
            self.class_factors = np.maximum(1.0, np.sqrt(threshold / self.class_frequency))
        self.class_factors[self.class_images == 0] = 1.0
        per_image = np.where(present, self.class_factors[None, :], 1.0)
        self.image_factors = per_image.max(1) if num_classes else np.ones(len(labels))

    def expected_epoch_size(self) -> float:
        """Expected number of draws per epoch: ``sum(r_i)``."""
        return float(self.image_factors.sum())

    def report(self, class_names: Sequence[str]) -> list[str]:
        """Lines for the training log: images per class, f_c, r_c, and the epoch's expected size."""
        lines = [f"{'class':<16} {'images':>7} {'share':>7} {'repeat':>7}"]
        for c, name in enumerate(class_names):
            lines.append(
                f"{name[:16]:<16} {self.class_images[c]:>7d} {self.class_frequency[c]:>7.3f} {self.class_factors[c]:>7.2f}"
            )
        n = len(self.image_factors)
        lines.append(f"epoch: {self.expected_epoch_size():.1f} draws expected from {n} images")
        return lines


def repeat_factors(labels: Sequence[np.ndarray], num_classes: int, threshold: float) -> np.ndarray:
    """Repeat factor per image, float64 [N] (see :class:`RepeatFactors`)."""
    return RepeatFactors(labels, num_classes, threshold).image_factors


def repeat_indices(indices: np.ndarray, factors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each of ``indices`` repeated ``floor(r) + (u < frac(r))`` times (``u`` uniform from ``rng``), in order.

    Args:
        indices: int64 [M] dataset indices.
        factors: float [N] repeat factors of the whole dataset (indexed by ``indices``).
    Returns:
        int64 [K] indices, ``E[K] = sum(factors[indices])``.
    """
    r = np.asarray(factors, dtype=np.float64)[indices]
    counts = np.floor(r).astype(np.int64) + (rng.random(len(r)) < (r - np.floor(r))).astype(np.int64)
    return np.repeat(np.asarray(indices, dtype=np.int64), counts)
