"""The parts a training is built from: data (with its pre-flight checks), model, optimization."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from detkit.engine import builders, dist
from detkit.engine.checkpoint import load_pretrained
from detkit.engine.ema import ModelEMA
from detkit.engine.optim import OPTIMIZER_DEFAULTS, LRSchedule, build_optimizer, scaled_lr
from detkit.engine.preflight import (
    PreflightError,
    check_categories,
    check_evaluator_data,
    check_num_classes,
    check_val_sample,
    split_error,
)
from detkit.engine.preflight_data import (
    check_label_maps,
    check_overlap,
    check_targets,
    warn_size_mismatch,
    warn_untiled_val,
)
from detkit.engine.runtime import resolve_amp
from detkit.engine.sync_bn import convert_sync_batchnorm, use_sync_bn

logger = logging.getLogger("detkit")


@dataclass
class TrainData:
    """The training set and loader, and the validation set, loader and evaluator (None without ``data.val``)."""

    train_set: Any
    train_loader: Any
    iters_per_epoch: int
    val_loader: Any = None
    evaluator: Any = None
    val_set: Any = None


def build_data(cfg: dict, device: torch.device | None = None) -> TrainData:
    """Build data.train and data.val; check that they agree on categories and that data.val loads. Batches are
    pinned for a CUDA ``device`` only (None: whenever CUDA is available)."""
    data = cfg["data"]
    pin = None if device is None else device.type == "cuda"
    train_set = _build_split(data, "train")
    loader = builders.build_dataloader(
        cfg, "train", distributed=dist.is_dist(), seed=cfg["seed"], start_iter=0, dataset=train_set, pin_memory=pin
    )
    if len(loader) == 0:
        raise PreflightError(
            f"data.train gives no batch (dataset of {len(train_set)} samples, "
            f"data.batch_size {data.get('batch_size')}); add images or lower the batch size"
        )
    _check_objects(train_set)
    out = TrainData(train_set, loader, len(loader))
    if data.get("val"):
        val_set = _build_split(data, "val")
        check_categories(train_set, val_set)
        check_overlap(train_set, val_set)
        first = check_val_sample(val_set)  # built once: the next check measures it too
        warn_untiled_val(train_set, val_set, first)  # a tiled data.train validated on whole images shrunk Nx
        out.val_loader = builders.build_dataloader(
            cfg, "val", distributed=dist.is_dist(), seed=cfg["seed"], dataset=val_set, pin_memory=pin
        )
        out.evaluator = builders.build_evaluator(cfg, val_set)
        check_evaluator_data(out.evaluator, val_set)
        out.val_set = val_set
    check_targets(cfg.get("model") or {}, train_set, out.val_set)  # masks / maps the model learns from
    dist.on_main(check_label_maps, train_set, out.val_set)  # SegFolderDataset maps: values past the classes, 0/255
    if dist.is_main_process():
        warn_size_mismatch(cfg)  # a WARNING: multi-scale recipes train at another size on purpose
    return out


def _build_split(data: dict, split: str) -> Any:
    """``data.<split>`` built; a ``classes`` it cannot read is reported with its key and the fix (split_error)."""
    from detkit.data.validate import DatasetError

    try:
        return builders.build_dataset(data[split])
    except DatasetError as e:
        if not str(e).startswith("classes "):
            raise
        raise DatasetError(split_error(e, split, data)) from e


def _check_objects(train_set) -> None:
    """A detection training set must hold at least one object (a non-crowd annotation): else nothing is learnt."""
    from detkit.data.datasets.coco import CocoDataset

    inner = getattr(train_set, "dataset", train_set)  # MixDataset / TiledDataset wrap a CocoDataset
    if not isinstance(inner, CocoDataset) or not inner.img_ids:
        return
    counts = Counter(a["category_id"] for a in inner.coco.dataset["annotations"] if not a.get("iscrowd", 0))
    if not counts:  # (the loaded annotations are those of the dataset's images: has_objects() is False)
        note = getattr(inner, "no_labels_note", None)  # a YOLO folder without label files: where they were looked for
        if note:
            raise PreflightError(f"data.train holds no object to learn: {note}")
        raise PreflightError(
            f"data.train ({inner.ann_file}) holds no object to learn (no annotations, or only crowd regions): "
            "training would learn background only; give the training json that has the annotations"
        )
    empty = [name for cid, name in zip(inner.cat_ids, inner.class_names) if not counts.get(cid)]
    if empty:
        logger.warning(
            "data.train (%s): %d class(es) without any object to learn: %s; the model gets an output for each "
            "but never sees one (an exporter's placeholder category, e.g. Roboflow's id 0, is the usual cause): "
            "remove such categories from the json, or add their annotations",
            inner.ann_file,
            len(empty),
            ", ".join(empty[:8]) + (", ..." if len(empty) > 8 else ""),
        )


def build_model_parts(cfg: dict, train_set, device: torch.device, load_from=None):
    """The model (its classes from ``train_set``), its DDP wrapper (None on one process) and its EMA (or None)."""
    from detkit.models.build import build_model
    from detkit.models.fit_check import check_parts_fit

    class_names = builders.model_class_names(train_set)
    check_num_classes(cfg["model"], class_names)
    resolve_class_weights(cfg["model"], train_set, class_names)
    model = build_model(cfg, class_names=class_names).to(device)
    check_parts_fit(model)  # channels and levels of the parts, before any data or weights are read
    tcfg = cfg["train"]
    if use_sync_bn(tcfg["sync_bn"], model, dist.get_world_size()):
        model = convert_sync_batchnorm(model, device)
        logger.info("BatchNorm layers synchronised over the %d processes (train.sync_bn)", dist.get_world_size())
    if load_from:
        load_pretrained(model, load_from)
    if tcfg["compile"]:  # in place, keys unchanged: checkpoints, EMA (an eager deep copy) and DDP as before
        from detkit.models.compile import compile_model

        compile_model(model)
    ddp = None
    if dist.is_dist():
        ids = [device.index] if device.type == "cuda" else None
        ddp = nn.parallel.DistributedDataParallel(
            model, device_ids=ids, find_unused_parameters=tcfg["find_unused_parameters"]
        )
    ema = ModelEMA(model, **tcfg["ema"]) if tcfg["ema"] else None
    return model, ddp, ema


def _class_weight_modes(node: Any, path: str = "model"):
    """``(path, owner dict)`` of every ``class_weight: <mode>`` (a string) in a model config, depth first."""
    if isinstance(node, dict):
        if isinstance(node.get("class_weight"), str):
            yield f"{path}.class_weight", node
        for key, value in node.items():
            yield from _class_weight_modes(value, f"{path}.{key}")


def resolve_class_weights(model_cfg: dict, train_set, class_names: list[str]) -> None:
    """Replace each ``class_weight: balanced | sqrt`` in ``model_cfg`` by its list, in place, and log the table.

    Counted from ``train_set``'s annotations (:mod:`detkit.data.class_freq`) before the model is built; the
    resolved config (config.yaml, the checkpoints' meta) then holds the numbers that eval and infer rebuild.
    """
    found = list(_class_weight_modes(model_cfg))
    if not found:
        return
    from detkit.data.class_freq import ClassWeights, class_counts

    if model_cfg.get("type") == "Segmentor":
        raise PreflightError(
            f"{found[0][0]}: {found[0][1]['class_weight']!r} counts objects or images, but a semantic segmentation "
            f"loss weighs pixels; give the list of {len(class_names)} weights (background first) instead"
        )
    try:
        counts, unit = class_counts(train_set, len(class_names), key=found[0][0])
        for key, owner in found:
            weights = ClassWeights(counts, owner["class_weight"], unit)
            logger.info("class weights (%s: %s), %s per class in data.train:", key, weights.mode, unit)
            for line in weights.report(class_names):
                logger.info("  %s", line)
            owner["class_weight"] = weights.as_list()
    except ValueError as e:
        raise PreflightError(str(e)) from e


@dataclass
class Optimization:
    """Optimizer, LR schedule and AMP settings of a training."""

    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    base_lr: float
    total_batch: int
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler


def build_optimization(cfg: dict, model: nn.Module, iters_per_epoch: int, device: torch.device) -> Optimization:
    """Optimizer with the linearly scaled LR (logged with its derivation), schedule, AMP dtype and scaler."""
    tcfg, ocfg = cfg["train"], cfg["optimizer"]
    acc, bs, world = int(tcfg["accumulate"]), int(cfg["data"].get("batch_size", 1)), dist.get_world_size()
    total_batch = bs * world * acc
    base_lr = scaled_lr({**OPTIMIZER_DEFAULTS, **ocfg}, total_batch)
    logger.info(
        "lr %g (optimizer.lr %g x total batch %d [%d per process x %d processes x %d accumulate] / base_batch_size %s)",
        base_lr,
        ocfg["lr"],
        total_batch,
        bs,
        world,
        acc,
        ocfg["base_batch_size"],
    )
    amp_dtype = resolve_amp(tcfg["amp"], device)
    return Optimization(
        optimizer=build_optimizer(model, ocfg, total_batch),
        schedule=LRSchedule.from_config(
            cfg["scheduler"], tcfg["max_epochs"], iters_per_epoch, max_iters=tcfg.get("max_iters")
        ),
        base_lr=base_lr,
        total_batch=total_batch,
        amp_dtype=amp_dtype,
        scaler=torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16),
    )
