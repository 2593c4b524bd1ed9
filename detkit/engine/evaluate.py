"""Evaluation loops: a model over a loader, and a checkpoint on a config's data.val (tools/eval.py).

A ``TiledDataset`` data.val is evaluated as SAHI does: each source image is predicted tile by tile with the
tiled prediction of ``detkit infer --tile`` (:func:`detkit.inference.tiling.predict_tiled`; the tiles go
through the TiledDataset's ``pipeline``), the detections merged, and the evaluator scores the whole images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from detkit.config import ConfigError
from detkit.engine import builders, dist
from detkit.engine.checkpoint import load_checkpoint, model_state, preserve_rng
from detkit.engine.logger import progress_bar, progress_enabled
from detkit.engine.runtime import move_batch, resolve_amp
from detkit.utils.amp import autocast
from detkit.utils.checkpoint import CheckpointMismatchError, load_model_state
from detkit.utils.device import parse_device


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader,
    evaluator,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    progress: bool | None = None,
    counts: dict[str, int] | None = None,
) -> dict[str, float]:
    """Run ``model.predict`` over ``loader``, feed ``evaluator`` and return ``evaluator.compute()``.

    ``progress``: a tqdm bar with ETA (default: on the main process when stdout and stderr are terminals);
    ``counts``, when given, receives ``skipped``: the samples of this process's share that the data left out
    (``None`` samples: an image that no longer reads, with ``on_error: skip`` / ``skip_bad_images``).
    """
    if progress is None:
        progress = progress_enabled(dist.is_main_process())
    tiled = tiled_val_set(loader)
    if tiled is not None:
        workers = int(getattr(loader, "num_workers", 0) or 0)
        return evaluate_tiled(
            model, tiled, evaluator, device, amp_dtype, progress, _batch_size(loader), workers, counts=counts
        )
    was_training = model.training
    model.eval()
    evaluator.reset()
    total = len(loader) if hasattr(loader, "__len__") else None
    seen = skipped = empty = 0  # images predicted, left out of a batch, batches left out whole
    try:
        with preserve_rng():
            for batch in progress_bar(loader, total=total, desc="evaluating", enabled=progress, unit="batch"):
                if batch is None:  # every sample of the batch left out
                    empty += 1
                    continue
                seen += len(batch.get("image_sizes") or ())
                skipped += int(batch.get("num_skipped", 0))
                with autocast(device.type, amp_dtype):
                    preds = model.predict(move_batch(batch, device))
                evaluator.process(batch, preds)
        metrics = evaluator.compute()
    finally:
        model.train(was_training)
    if counts is not None:
        share = _share(loader) if empty else None  # the exact size of the batches left out whole
        counts["skipped"] = share - seen if share is not None else skipped + empty * _batch_size(loader)
    return {k: float(v) for k, v in metrics.items()}


def _share(loader) -> int | None:
    """The number of samples ``loader`` reads in this process (its batch sampler's indices), or None when its
    sampler does not say."""
    sampler = getattr(getattr(loader, "batch_sampler", None), "sampler", None)
    try:
        return len(sampler)
    except TypeError:
        return None


def tiled_val_set(loader) -> Any:
    """The ``TiledDataset`` that ``loader`` reads (data.val tiled: evaluate whole images tile by tile), else None."""
    from detkit.data.datasets.tiled import TiledDataset

    dataset = getattr(loader, "dataset", None)
    return dataset if isinstance(dataset, TiledDataset) else None


def _batch_size(loader) -> int:
    """Tiles per forward pass in tiled evaluation: the loader's batch size (data.val_batch_size or batch_size)."""
    size = getattr(getattr(loader, "batch_sampler", None), "batch_size", None) or getattr(loader, "batch_size", None)
    return int(size or 1)


def tile_runner(model: nn.Module, pipeline, device: torch.device, amp_dtype: torch.dtype | None):
    """``run(crops, batch_size)`` for ``predict_tiled``: tiles [h,w,3] through ``pipeline``, ``model.predict`` on
    ``device`` (under autocast as in training), per-tile dicts of CPU tensors in tile pixels."""
    from detkit.inference.runner import predict_batch

    def run(crops: Sequence[np.ndarray], batch_size: int) -> list[dict]:
        out: list[dict] = []
        for start in range(0, len(crops), batch_size):
            with autocast(device.type, amp_dtype):
                batch = crops[start : start + batch_size]
                out.extend(predict_batch(model, batch, start, pipeline, to_device=lambda b: move_batch(b, device)))
        return out

    return run


def _first(items: list) -> Any:
    return items[0]


def _source_loader(tiled, num_workers: int):
    """This rank's source images of ``tiled`` (raw samples, whole), decoded ahead by ``num_workers`` workers."""
    from torch.utils.data import DataLoader

    from detkit.data.samplers import InferenceSampler

    sampler = InferenceSampler(len(tiled.dataset), dist.get_world_size(), dist.get_rank())
    return DataLoader(tiled.dataset, batch_size=1, sampler=sampler, num_workers=num_workers, collate_fn=_first)


@torch.no_grad()
def evaluate_tiled(
    model: nn.Module,
    tiled,
    evaluator,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    progress: bool = False,
    batch_size: int = 1,
    num_workers: int = 0,
    counts: dict[str, int] | None = None,
) -> dict[str, float]:
    """Evaluate ``model`` on the whole source images of the TiledDataset ``tiled``, each predicted tile by tile
    (``tiled.tile_size``, ``tiled.overlap``; ``batch_size`` tiles per pass) and merged as ``detkit infer --tile``
    merges them; ``evaluator`` scores the merged predictions against the source annotations. ``counts``: as
    :func:`evaluate`'s (``skipped``: the source images left out)."""
    from detkit.inference.tiling import TileOptions, predict_tiled

    options = TileOptions(size=tiled.tile_size, overlap=tiled.overlap)
    run = tile_runner(model, tiled.pipeline, device, amp_dtype)
    was_training = model.training
    model.eval()
    evaluator.reset()
    images = _source_loader(tiled, num_workers)
    skipped = 0
    try:
        with preserve_rng():
            for sample in progress_bar(images, total=len(images), desc="evaluating (tiled)", enabled=progress):
                if sample is None:  # the source skipped the image (on_error: skip)
                    skipped += 1
                    continue
                pred = predict_tiled(model, sample["image"], options, batch_size=batch_size, run=run)
                batch = {"image_ids": [sample["image_id"]], "orig_sizes": [tuple(sample["image"].shape[:2])]}
                if sample.get("sem_seg") is not None:
                    batch["targets"] = [{"sem_seg": torch.as_tensor(np.asarray(sample["sem_seg"]))}]
                evaluator.process(batch, [pred])
        metrics = evaluator.compute()
    finally:
        model.train(was_training)
    if counts is not None:
        counts["skipped"] = skipped
    return {k: float(v) for k, v in metrics.items()}


def tiled_split(spec: dict, size: Sequence[int], overlap: float) -> dict:
    """The dataset spec ``spec`` (data.val) evaluated on tiles: a ``TiledDataset`` over it (its ``pipeline`` for
    the tiles, as ``detkit infer --tile`` runs the config's), or ``spec``'s own tiles set to ``size``, ``overlap``."""
    tiles = {"tile_size": [int(size[0]), int(size[1])], "overlap": float(overlap)}
    if spec.get("type") == "TiledDataset":
        return {**spec, **tiles}
    inner = {k: v for k, v in spec.items() if k != "pipeline"}
    out = {"type": "TiledDataset", **tiles, "dataset": inner}
    return {**out, "pipeline": spec["pipeline"]} if spec.get("pipeline") is not None else out


def evaluate_checkpoint(
    cfg: dict, checkpoint: str | Path, device: str | None = None, wrap: Callable[[nn.Module], nn.Module] | None = None
):
    """Evaluate ``checkpoint`` on ``cfg['data']['val']``; return ``(metrics, evaluator)``.

    ``wrap(model)`` replaces the loaded model before the evaluation (tools/eval.py's ``--tta`` / ``--ensemble``
    evaluate ``detkit.inference.ensemble.Ensemble([model, ...])``).

    The model gets the class names saved in the checkpoint: another count than data.val's is a
    ``CheckpointMismatchError``, the same names in another order (or other names) a
    ``CategoryMismatchWarning`` before the evaluation; weights that do not fit the config's model are a
    ``CheckpointMismatchError`` counting the tensors that fit.
    """
    from detkit.evaluation.checks import class_names_mismatch, warn_mismatch
    from detkit.models.backbones.init_weights import without_init_checkpoint
    from detkit.models.build import build_model

    val_cfg = (cfg.get("data") or {}).get("val")
    if not val_cfg:
        raise ConfigError("the config has no data.val section to evaluate on")
    dev = parse_device(device)
    ckpt = load_checkpoint(checkpoint)
    val_set = builders.build_dataset(val_cfg)
    val_names = builders.model_class_names(val_set)
    names = list((ckpt.get("meta") or {}).get("class_names") or val_names)
    where = f"data.val ({val_cfg.get('ann_file') or val_cfg.get('img_dir') or val_cfg.get('type')})"
    message = class_names_mismatch(names, val_names, f"checkpoint {checkpoint}", where)
    if message and len(names) != len(val_names):
        raise CheckpointMismatchError(message)
    model = build_model(without_init_checkpoint(cfg), class_names=names).to(dev)  # weights: the checkpoint's
    load_model_state(
        model,
        model_state(ckpt),
        str(checkpoint),
        hint="Use the config the checkpoint was trained with (a run keeps it as config.yaml next to its checkpoints)",
    )
    if message:  # after the weights load: a checkpoint that does not fit gets its error alone
        warn_mismatch(message)
    return score_on_val(wrap(model) if wrap is not None else model, cfg, val_set, dev)


def score_on_val(model: nn.Module, cfg: dict, val_set, device: torch.device, progress: bool | None = None):
    """``model`` evaluated on ``val_set`` (built from ``cfg``'s data.val) with the config's loader, evaluator and
    AMP setting; returns ``(metrics, evaluator)`` (``evaluate_checkpoint``'s and ``detkit.evaluate``'s last step)."""
    loader = builders.build_dataloader(
        cfg,
        "val",
        distributed=dist.is_dist(),
        seed=int(cfg.get("seed") or 0),
        dataset=val_set,
        pin_memory=device.type == "cuda",
    )
    evaluator = builders.build_evaluator(cfg, val_set)
    amp = resolve_amp((cfg.get("train") or {}).get("amp", False), device)
    return evaluate(model, loader, evaluator, device, amp, progress=progress), evaluator
