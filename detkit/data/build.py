"""Build datasets and DataLoaders from the ``data`` section of a config."""

from __future__ import annotations

import copy
import functools
import importlib
import logging
import random
from typing import Any

import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import BatchSampler, DataLoader

from detkit.data.collate import collate
from detkit.data.repeat_factors import RepeatFactors, image_labels_of
from detkit.data.samplers import GroupedBatchSampler, InferenceSampler
from detkit.data.transforms import build_transforms
from detkit.registry import DATASETS

__all__ = [
    "SeededDataset",
    "build_dataloader",
    "build_dataset",
    "set_loader_epoch",
    "worker_init_fn",
]


def build_dataset(split_cfg: dict) -> Any:
    """Build a dataset from ``{type: CocoDataset, ..., pipeline: [...]}``; a spec list pipeline is built first."""
    if not isinstance(split_cfg, dict) or "type" not in split_cfg:
        raise ValueError(f"data split config must be a mapping with a 'type' key, got {split_cfg!r}")
    importlib.import_module("detkit.data.datasets")  # registers every dataset
    cfg = copy.deepcopy(split_cfg)
    if isinstance(cfg.get("pipeline"), (list, tuple)):
        cfg["pipeline"] = build_transforms(cfg["pipeline"])
    return DATASETS.build(cfg)


class SeededDataset(torch.utils.data.Dataset):
    """A view of ``dataset`` whose item ``(index, epoch)`` reseeds the pipeline from ``(seed, epoch, index)`` first.

    The random augmentations of a sample are then a pure function of the base seed, the epoch and the
    index: the same after a resume, with any number of workers (persistent or not) and processes. The
    epoch travels with the index (``GroupedBatchSampler(with_epoch=True)``), so no state has to reach the
    workers. Seeded are the steps of a ``detkit.data.transforms.Pipeline`` in ``dataset.pipeline``
    (albumentations groups and detkit transforms with an ``rng``); other randomness (a custom callable
    drawing from the global RNGs) is not. A dataset with ``set_epoch`` gets the item's epoch first (e.g.
    ``MixDataset`` for close_mosaic). A plain int item is passed through unchanged.
    """

    def __init__(self, dataset: Any, seed: int = 0):
        self.dataset = dataset
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        if isinstance(key, (tuple, list)):
            index, epoch = (int(k) for k in key)
            if callable(getattr(self.dataset, "set_epoch", None)):  # e.g. MixDataset's close_mosaic
                self.dataset.set_epoch(epoch)
            seed = getattr(getattr(self.dataset, "pipeline", None), "seed", None)
            if callable(seed):
                seed((self.seed, epoch, index))
            key = index
        return self.dataset[key]


def worker_init_fn(worker_id: int) -> None:
    """Per-worker setup: no OpenCV threads; seed numpy / random from ``torch.initial_seed()``.

    ``torch.initial_seed()`` in a worker is the loader's base seed (drawn from its seeded generator)
    plus ``worker_id``, so every worker gets a different, reproducible stream.
    """
    cv2.setNumThreads(0)
    seed = torch.initial_seed()
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _dist_info(distributed: bool) -> tuple[int, int]:
    if distributed and dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if distributed:
        raise RuntimeError(
            "build_dataloader(distributed=True) needs torch.distributed to be initialised "
            "(run under torchrun and call init_process_group first)"
        )
    return 0, 1


def _split_cfg(data_cfg: dict, split: str) -> dict:
    if split in data_cfg:
        return data_cfg[split]
    if split == "test" and "val" in data_cfg:
        return data_cfg["val"]
    raise KeyError(f"config has no data.{split} section (found: {', '.join(sorted(data_cfg))})")


def _repeat_factors(data_cfg: dict, dataset: Any, report: bool) -> np.ndarray | None:
    """``data.repeat_threshold`` (> 0): repeat factors of the training images, logged per class."""
    threshold = data_cfg.get("repeat_threshold")
    if not threshold:
        return None
    names = list(getattr(dataset, "class_names", None) or [])
    factors = RepeatFactors(image_labels_of(dataset), len(names), float(threshold))
    if report:
        logger = logging.getLogger("detkit")
        logger.info("repeat-factor sampling (data.repeat_threshold %g), images per class:", float(threshold))
        for line in factors.report(names):
            logger.info("  %s", line)
    return factors.image_factors


def build_dataloader(
    cfg: dict,
    split: str,
    distributed: bool = False,
    seed: int = 0,
    start_iter: int = 0,
    dataset: Any = None,
    pin_memory: bool | None = None,
) -> DataLoader:
    """Build the DataLoader of ``split`` ('train' | 'val' | 'test') from ``cfg['data']``.

    Train: ``GroupedBatchSampler`` (shuffled by ``(seed, epoch)``, aspect-grouped, global batches of
    ``batch_size x world`` sliced over the ranks) over ``SeededDataset(dataset, seed)`` (random
    augmentations seeded by ``(seed, epoch, index)``); call ``set_loader_epoch(loader, epoch)`` before
    each epoch; ``start_iter`` skips that many batches of the first pass (resume); ``loader.dataset`` is
    the ``SeededDataset`` (``loader.dataset.dataset`` the dataset). Val/test: each rank a contiguous
    slice, in order, no duplicates.
    Batches come from ``collate`` (``cfg['data'].get('size_divisor', 32)``). ``pin_memory``: page-locked
    batches for fast copies to a GPU (None: when CUDA is available; pass False for a CPU run on a GPU machine,
    which would otherwise make a CUDA context on the current GPU).
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    data_cfg = cfg["data"]
    if dataset is None:
        dataset = build_dataset(_split_cfg(data_cfg, split))
    rank, world = _dist_info(distributed)
    batch_size = int(data_cfg["batch_size"])
    if split == "train":
        batch_sampler = GroupedBatchSampler(
            dataset,
            batch_size,
            shuffle=True,
            seed=seed,
            num_replicas=world,
            rank=rank,
            with_epoch=True,
            repeat_factors=_repeat_factors(data_cfg, dataset, rank == 0),
        )
        batch_sampler.set_start_iter(start_iter)
        dataset = SeededDataset(dataset, seed)
    else:
        val_bs = int(data_cfg.get("val_batch_size") or batch_size)
        batch_sampler = BatchSampler(InferenceSampler(len(dataset), world, rank), val_bs, drop_last=False)
    num_workers = int(data_cfg.get("num_workers", 0))
    generator = torch.Generator()
    generator.manual_seed(int(np.random.SeedSequence([seed, rank]).generate_state(1)[0]))
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        collate_fn=functools.partial(collate, size_divisor=int(data_cfg.get("size_divisor", 32))),
        pin_memory=torch.cuda.is_available() if pin_memory is None else bool(pin_memory),
        worker_init_fn=worker_init_fn,
        persistent_workers=num_workers > 0,
        generator=generator,
    )


def set_loader_epoch(loader: DataLoader, epoch: int) -> None:
    """Tell the loader's sampler which epoch comes next (no-op for samplers without ``set_epoch``)."""
    for s in (loader.batch_sampler, getattr(loader.batch_sampler, "sampler", None), loader.sampler):
        if hasattr(s, "set_epoch"):
            s.set_epoch(epoch)
            return
