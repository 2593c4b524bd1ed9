"""Batch samplers: aspect-ratio grouped training batches (shardable, resumable) and sequential inference shards."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Sampler

from detkit.data.repeat_factors import repeat_indices

__all__ = ["GroupedBatchSampler", "InferenceSampler", "aspect_groups", "aspect_ratios_of"]


def aspect_ratios_of(dataset: Any) -> list[float]:
    """Return ``h / w`` for every item of ``dataset`` without decoding images.

    Looks for ``dataset.aspect_ratios`` (a sequence), then ``dataset.get_aspect_ratio(i)``, then
    ``dataset.get_img_info(i)`` / ``dataset.get_image_info(i)`` with ``height`` and ``width``. When none exists
    every item is treated as landscape (one group) and a warning says so.
    """
    n = len(dataset)
    ratios = getattr(dataset, "aspect_ratios", None)
    if ratios is not None and not callable(ratios):
        ratios = [float(r) for r in ratios]
        if len(ratios) != n:
            raise ValueError(f"{type(dataset).__name__}.aspect_ratios has {len(ratios)} entries for {n} items")
        return ratios
    if callable(getattr(dataset, "get_aspect_ratio", None)):
        return [float(dataset.get_aspect_ratio(i)) for i in range(n)]
    for name in ("get_img_info", "get_image_info"):
        fn = getattr(dataset, name, None)
        if callable(fn):
            infos = [fn(i) for i in range(n)]
            return [float(d["height"]) / float(d["width"]) for d in infos]
    warnings.warn(
        f"{type(dataset).__name__} has no aspect_ratios; batches are not grouped by aspect ratio", stacklevel=2
    )
    return [0.5] * n


def aspect_groups(ratios: Sequence[float]) -> np.ndarray:
    """Group id per item: 1 for portrait or square (``h / w >= 1``), 0 for landscape. Returns int64 ``[N]``."""
    return (np.asarray(ratios, dtype=np.float64) >= 1.0).astype(np.int64)


class GroupedBatchSampler(Sampler[list]):
    """Yields batches of dataset indices whose images share an aspect group (landscape vs portrait).

    The epoch is cut into *global* batches of ``batch_size * num_replicas`` indices, each from one aspect
    group: a group's shuffled indices are padded by repeating them (as mmdet's GroupSampler /
    torchvision's GroupedBatchSampler) to a multiple of the global batch, or truncated to one with
    ``drop_last``; the global batches are then shuffled together, and rank ``r`` takes the slice
    ``[r * batch_size, (r + 1) * batch_size)`` of each. So the global batches depend only on ``(seed,
    epoch, batch_size * num_replicas)``: 2 processes x batch b see, step by step, the same images as
    1 process x batch 2b. Every rank gets the same number of batches and, apart from the padding
    repeats, a disjoint share of the epoch. ``set_start_iter(i)`` makes the next pass skip its first
    ``i`` batches (exact resume).

    Args:
        dataset_or_ratios: a dataset (see ``aspect_ratios_of``) or a sequence of ``h / w`` per item.
        batch_size: images per batch (per process).
        shuffle: shuffle within groups and the order of the batches.
        seed: base seed, combined with the epoch.
        drop_last: drop each group's tail instead of padding it.
        num_replicas: number of processes (world size).
        rank: this process's rank.
        with_epoch: yield ``(index, epoch)`` pairs instead of indices, so that the dataset (in any worker)
            knows the epoch of the sample it makes (see ``detkit.data.build.SeededDataset``).
        repeat_factors: float [N] >= 1 per item (``detkit.data.repeat_factors``): each epoch item ``i`` is
            drawn ``floor(r_i)`` or ``floor(r_i) + 1`` times (stochastic rounding, mean ``r_i``) before the
            shuffle; the epoch length follows the expected count, so it is the same every epoch.
    """

    def __init__(
        self,
        dataset_or_ratios: Any,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
        with_epoch: bool = False,
        repeat_factors: Sequence[float] | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"invalid rank {rank} for num_replicas {num_replicas}")
        is_ratios = isinstance(dataset_or_ratios, (list, tuple, np.ndarray))
        ratios = list(dataset_or_ratios) if is_ratios else aspect_ratios_of(dataset_or_ratios)
        self.groups = aspect_groups(ratios)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.with_epoch = with_epoch
        self.epoch = 0
        self.start_iter = 0
        self.global_batch_size = self.batch_size * self.num_replicas
        self.repeat_factors = None if repeat_factors is None else np.asarray(repeat_factors, dtype=np.float64)
        if self.repeat_factors is not None and self.repeat_factors.shape != self.groups.shape:
            raise ValueError(f"{len(self.repeat_factors)} repeat factors for {len(self.groups)} items")
        weights = np.ones(len(self.groups)) if self.repeat_factors is None else self.repeat_factors
        rnd = math.floor if drop_last else math.ceil
        # global batches contributed by each group (= batches per rank); with repeats: their expected count
        self._group_batches = {
            int(g): int(rnd(round(weights[self.groups == g].sum(), 6) / self.global_batch_size))
            for g in np.unique(self.groups)
        }

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next pass yields."""
        self.epoch = int(epoch)

    def set_start_iter(self, start_iter: int) -> None:
        """Make the next pass skip its first ``start_iter`` batches (resume in the middle of an epoch)."""
        if not 0 <= start_iter <= len(self):
            raise ValueError(f"start_iter {start_iter} outside 0..{len(self)} batches per epoch")
        self.start_iter = int(start_iter)

    def global_batches(self, epoch: int) -> np.ndarray:
        """The epoch's global batches, int64 ``[len(self), batch_size * num_replicas]``, in order.

        A function of ``(seed, epoch, batch_size * num_replicas)`` (and the aspect groups) only.
        """
        rng = np.random.default_rng([self.seed, epoch])
        g = self.global_batch_size
        batches: list[np.ndarray] = []
        for group, k in self._group_batches.items():
            idx = np.flatnonzero(self.groups == group)
            if self.repeat_factors is not None:
                idx = repeat_indices(idx, self.repeat_factors, rng)
            if self.shuffle:
                idx = rng.permutation(idx)
            batches.extend(np.resize(idx, k * g).reshape(-1, g))  # pads by cycling, or truncates (drop_last)
        if not batches:
            return np.zeros((0, g), np.int64)
        order = rng.permutation(len(batches)) if self.shuffle else np.argsort([b[0] for b in batches], kind="stable")
        return np.stack(batches)[order].astype(np.int64)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """All batches of ``epoch`` for this rank (its slice of each global batch), in order, no skipping."""
        lo = self.rank * self.batch_size
        return self.global_batches(epoch)[:, lo : lo + self.batch_size].tolist()

    def __iter__(self) -> Iterator[list]:
        start, self.start_iter = self.start_iter, 0  # skipping applies to one pass only
        epoch = self.epoch
        for batch in self.epoch_batches(epoch)[start:]:
            yield [(i, epoch) for i in batch] if self.with_epoch else batch

    def __len__(self) -> int:
        return sum(self._group_batches.values())


class InferenceSampler(Sampler[int]):
    """Sequential indices of this rank's contiguous slice of ``range(size)``; no padding, no repeats.

    Slices differ in length by at most one (the first ``size % num_replicas`` ranks get one more).
    """

    def __init__(self, size: int, num_replicas: int = 1, rank: int = 0):
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"invalid rank {rank} for num_replicas {num_replicas}")
        base, extra = divmod(int(size), num_replicas)
        sizes = [base + int(r < extra) for r in range(num_replicas)]
        self.begin = sum(sizes[:rank])
        self.end = self.begin + sizes[rank]

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.begin, self.end))

    def __len__(self) -> int:
        return self.end - self.begin
