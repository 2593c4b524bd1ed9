"""The library API: ``init_model``, ``predict``, ``load_checkpoint``, ``load_config``, ``build_model`` (re-exported)
and ``evaluate`` (a model scored on its config's data.val, or on other data: ``detkit eval`` from Python)."""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from detkit.config import ConfigError, load_config  # noqa: F401
from detkit.inference.api import init_model, predict  # noqa: F401
from detkit.inference.runner import ImageInput, build_test_pipeline, to_rgb_array  # noqa: F401
from detkit.models.build import build_model  # noqa: F401
from detkit.utils.checkpoint import load_checkpoint  # noqa: F401

__all__ = [
    "ImageInput",
    "build_model",
    "build_test_pipeline",
    "evaluate",
    "init_model",
    "load_checkpoint",
    "load_config",
    "predict",
    "to_rgb_array",
]

SPLITS = ("val", "test")
_CONFIG_TYPES = "a model (detkit.init_model's), a config path, a packaged config name, a config dict or None"
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")  # never a config
# data= that fits each task (the keys over the config's split; its type and pipeline are kept)
DATA_EXAMPLES = {
    "semantic": "a dict {'img_dir': IMAGES, 'mask_dir': LABEL_MAPS}",
    "classifier": "a folder of class folders (ROOT/<class>/<image>) or a dict {'img_dir': ROOT}",
    "detector": "a dict {'ann_file': JSON, 'img_dir': IMAGES} or an Ultralytics data.yaml",
}
# the keys of a data dict (without a type) -> the dataset type they are, where the split's type takes other keys
# (a model trained with --data data.yaml scored on a COCO json: {'ann_file', 'img_dir'} is a CocoDataset)
DATA_TYPES = (
    (("ann_file", "img_dir"), "CocoDataset"),
    (("img_dir", "mask_dir"), "SegFolderDataset"),
    (("data_yaml",), "YOLODataset"),
    (("img_dir", "label_dir"), "YOLODataset"),
    (("root",), "VOCDataset"),
)


def _task(cfg: Any) -> str:
    """``semantic``, ``classifier`` or ``detector``: what a config's model predicts (which data fits it)."""
    model = cfg.get("model") if isinstance(cfg, dict) else None
    model = model if isinstance(model, dict) else {}
    head = model.get("head") if isinstance(model.get("head"), dict) else {}
    if model.get("type") == "Segmentor" or model.get("decode_head") is not None:
        return "semantic"
    return "classifier" if model.get("type") == "Classifier" or head.get("type") == "ClsHead" else "detector"


def _is_checkpoint(path: Any) -> bool:
    """Whether ``path`` names a checkpoint file (by its name, or by its first bytes: a torch archive)."""
    from detkit.utils.checkpoint import file_kind

    if not isinstance(path, (str, os.PathLike)):
        return False
    torch_kinds = ("torch-zip", "pickle", "truncated-zip", "safetensors")
    return str(path).lower().endswith(CHECKPOINT_SUFFIXES) or file_kind(path) in torch_kinds


def _checkpoint_first(model: Any, checkpoint: Any) -> tuple[Any, Any]:
    """``evaluate("run/best.pth")``: a checkpoint given first (a .pth file is never a config) is the checkpoint,
    scored with the config it stores; with a checkpoint given as well, a ValueError names the order."""
    if not _is_checkpoint(model):
        return model, checkpoint
    if checkpoint is None:
        return None, model
    swapped = isinstance(checkpoint, (str, os.PathLike)) and str(checkpoint).lower().endswith((".yaml", ".yml"))
    fix = f"evaluate({str(checkpoint)!r}, {str(model)!r})" if swapped else f"evaluate(None, {str(model)!r})"
    raise ValueError(
        f"evaluate: model {str(model)!r} is a checkpoint, not a config, and checkpoint {str(checkpoint)!r} is given "
        f"too; the order is evaluate(CONFIG, CHECKPOINT): {fix}" + ("" if swapped else " scores it with its config")
    )


def _check_arguments(model: Any, checkpoint: Any, split: Any, device: Any, progress: Any) -> None:
    """The types of ``evaluate``'s arguments, and what goes with a model already built (no checkpoint, no device)."""
    from detkit.inference.api import _check_progress

    if model is not None and not isinstance(model, (nn.Module, str, os.PathLike, dict)):
        raise TypeError(f"evaluate: model must be {_CONFIG_TYPES}, got {type(model).__name__}")
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"evaluate: checkpoint must be a path, got {type(checkpoint).__name__}")
    if split not in SPLITS:
        raise ValueError(f"evaluate: split must be 'val' or 'test' (the config's data.val / data.test), got {split!r}")
    _check_progress(progress, "evaluate")
    if isinstance(model, nn.Module):
        if checkpoint is not None or device is not None:
            given = "checkpoint" if checkpoint is not None else "device"
            raise ValueError(
                f"evaluate: {given} is for a model built from a config; a model is evaluated as it is, where it is: "
                "evaluate(CONFIG, CHECKPOINT, device=...), or move the model first (model.to(device))"
            )
        if not isinstance(getattr(model, "cfg", None), dict):
            raise ValueError(
                f"evaluate: the {type(model).__name__} carries no config (model.cfg) to read its data from; build it "
                "with detkit.init_model(CONFIG, CHECKPOINT), or give evaluate(CONFIG, CHECKPOINT)"
            )
    elif checkpoint is None:
        raise ValueError(
            "evaluate: no checkpoint given; evaluate(CONFIG, CHECKPOINT) scores a trained model (or give a model "
            "from detkit.init_model)"
        )


def _dataset_keys(type_name: Any) -> set[str] | None:
    """The keys that the registered dataset ``type_name`` takes; None for an unknown type or a wrapper (a
    ``MixDataset`` or ``TiledDataset`` passes keys on to the dataset it wraps)."""
    import detkit.data.datasets  # noqa: F401  (registers every dataset)
    from detkit.config_check import accepted
    from detkit.registry import DATASETS

    if not isinstance(type_name, str) or type_name not in DATASETS:
        return None
    keys = set(accepted(DATASETS.get(type_name))[0])
    return None if "dataset" in keys else keys


def _foreign_keys(base: dict, data: dict) -> list[str]:
    """The keys of a ``data`` dict without a ``type`` that the split's dataset type does not take ([] when it
    takes them all, or gives a type of its own, or the split's type is a wrapper or unknown)."""
    takes = None if "type" in data else _dataset_keys(base.get("type"))
    return [] if takes is None else [k for k in data if k not in takes]


def _inferred_type(base: dict, data: dict) -> str | None:
    """The dataset type that the keys of a ``data`` dict without a ``type`` are, when the split's type does not take
    them (``{'ann_file', 'img_dir'}`` over a data.yaml's YOLODataset: a CocoDataset); None otherwise."""
    if not _foreign_keys(base, data):
        return None
    for keys, name in DATA_TYPES:
        takes = _dataset_keys(name) or set()
        if set(keys) <= set(data) and set(data) <= takes:
            return name
    return None


def _data_spec(split_spec: Any, data: dict) -> dict:
    """The dataset spec that a ``data`` dict makes of the config's split: its keys over the split's. A ``type`` of
    its own, or keys of another dataset type than the split's (:func:`_inferred_type`), keeps only the split's
    ``pipeline`` (the test resizing)."""
    base = split_spec if isinstance(split_spec, dict) else {}
    inferred = _inferred_type(base, data)
    data = {"type": inferred, **data} if inferred else data
    if "type" in data and data["type"] != base.get("type"):
        base = {"pipeline": base["pipeline"]} if base.get("pipeline") is not None else {}
    return {**base, **data}


def _dict_data(cfg: dict, data: dict, split: str) -> dict:
    """A copy of ``cfg`` whose data.<split> is the ``data`` dict over the split (:func:`_data_spec`), checked: a
    misspelt key is named, and keys that no dataset type takes together ask for a ``type``."""
    from detkit.config_check import check_config

    splits = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
    base = splits.get(split) if isinstance(splits.get(split), dict) else splits.get("val")  # (no data.test)
    base = base if isinstance(base, dict) else {}
    out = {**cfg, "data": {**splits, split: _data_spec(base, data)}}
    try:
        check_config(out)
    except ConfigError as e:
        foreign = _foreign_keys(base, data)
        if not foreign or _inferred_type(base, data):
            raise
        raise ConfigError(
            f"{e} (data= is merged over data.{split}, a {base['type']}, which takes no {', '.join(foreign)}; for "
            "another dataset type give its 'type' as well, e.g. data={'type': 'CocoDataset', 'ann_file': JSON, "
            "'img_dir': IMAGES})"
        ) from None
    return out


def _with_data(cfg: dict, data: Any, split: str) -> dict:
    """A copy of ``cfg`` reading ``data`` (a dataset dict over data.<split>, an Ultralytics data.yaml, a classifier's
    class folders) for ``split``; ``cfg`` itself when ``data`` is None."""
    from detkit.data.data_arg import apply_data_folder, apply_data_yaml

    if data is None:
        return cfg
    if isinstance(data, dict):
        return _dict_data(cfg, data, split)
    if not isinstance(data, (str, os.PathLike)):
        raise TypeError(
            f"evaluate: data must be a dataset dict, a data.yaml path or a class-folder root, got {type(data).__name__}"
        )
    if os.path.isdir(data):
        try:
            return apply_data_folder(cfg, data, hold_out=False, api=True)[0]
        except ConfigError as e:
            raise ConfigError(f"evaluate: {e}") from None
    if _task(cfg) == "semantic":
        raise ConfigError(
            f"evaluate: data={str(data)!r} is a file, and a semantic segmentor is scored on images and label maps "
            f"from two folders: give data= as {DATA_EXAMPLES['semantic']}"
        )
    if str(data).lower().endswith(".json"):
        raise ValueError(
            f"evaluate: data {data} is a json; for COCO annotations give data={{'ann_file': '{data}', 'img_dir': "
            "IMAGES}, for Ultralytics data its data.yaml"
        )
    if not os.path.isfile(data):
        raise FileNotFoundError(f"evaluate: data {data} not found; give a data.yaml, a class-folder root or a dict")
    return apply_data_yaml(cfg, data)


def _scored_config(cfg: dict, data: Any, split: str, label: str) -> dict:
    """``cfg`` (not modified) with ``data`` applied and the split to score as its data.val."""
    cfg = _with_data(cfg, data, split)
    splits = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
    if not isinstance(splits.get(split), dict):
        state = "is null" if split in splits else "is missing"
        raise ConfigError(
            f"evaluate: in {label} data.{split} {state}, so there is nothing to evaluate on; give data= as "
            f"{DATA_EXAMPLES[_task(cfg)]} (read as data.val is, with its pipeline)"
        )
    return {**cfg, "data": {**splits, "val": splits[split]}}


def _score(model: nn.Module, cfg: dict, progress: bool | None) -> dict[str, float]:
    """``model`` scored on ``cfg``'s data.val, as ``detkit eval`` scores a checkpoint (the class names checked
    against the data's first: another count is an error, other names or order a warning)."""
    import warnings

    from detkit.engine import builders
    from detkit.engine.evaluate import score_on_val
    from detkit.evaluation.checks import CategoryMismatchWarning, class_names_mismatch
    from detkit.inference.inputs import outside_stacklevel
    from detkit.inference.runner import interactive
    from detkit.utils.checkpoint import CheckpointMismatchError

    val_cfg = cfg["data"]["val"]
    val_set = builders.build_dataset(val_cfg)
    names = getattr(model, "class_names", None)
    where = f"data.val ({val_cfg.get('ann_file') or val_cfg.get('img_dir') or val_cfg.get('type')})"
    message = class_names_mismatch(names, builders.model_class_names(val_set), "the model", where) if names else None
    if message and len(names) != len(builders.model_class_names(val_set)):
        raise CheckpointMismatchError(f"evaluate: {message}")
    if message:
        warnings.warn(message, CategoryMismatchWarning, stacklevel=outside_stacklevel())
    if progress is None:
        import sys

        progress = interactive(sys.stderr)
    return score_on_val(model, cfg, val_set, next(model.parameters()).device, progress)[0]


def evaluate(
    model: nn.Module | str | os.PathLike | dict | None = None,
    checkpoint: str | os.PathLike | None = None,
    data: dict | str | os.PathLike | None = None,
    split: str = "val",
    device: str | None = None,
    progress: bool | None = None,
) -> dict[str, float]:
    """Score a trained model on a dataset, as ``detkit eval CONFIG CHECKPOINT`` does; returns the metrics.

    Args:
        model: the config to build the model from (a path, a packaged config name, or a dict such as
            ``detkit.load_config(CONFIG, ['k=v'])``; None: the config stored in ``checkpoint``; a checkpoint file
            given here, ``evaluate("run/best.pth")``, is read as ``evaluate(None, "run/best.pth")``), or a model already
            built (``detkit.init_model``'s, carrying ``model.cfg``: evaluated as it is, on its device, in eval
            mode and put back in its mode after).
        checkpoint: the weights (needed with a config, refused with a model).
        data: other data to score on instead of the config's: a dict of dataset keys over the config's split
            (data.val's when the split is missing) (``{'ann_file': 'val.json', 'img_dir': 'images/'}``, a segmentor's
            ``{'img_dir': ..., 'mask_dir': ...}``; a ``type`` of its own, or keys of another type than the split's
            (``ann_file`` + ``img_dir``: ``CocoDataset`` over a data.yaml's ``YOLODataset``), keeps only the config's
            ``pipeline``), an Ultralytics data.yaml, or a classifier's folder of class folders (as ``--data``: with a
            config, the model's ``num_classes`` is then the data's, so ``evaluate("yolo_n_coco", CKPT,
            data="data.yaml")`` scores a run trained with ``--data data.yaml``).
        split: ``'val'`` (default) or ``'test'``: the config's (or the data.yaml's) split to score.
        device: cpu, cuda, cuda:N (default: CUDA when available); for a config only.
        progress: a tqdm bar over the batches on stderr: True, False, or None (on a terminal or in a notebook).

    Returns:
        ``{metric: value}`` floats in 0..1, -1 where undefined: ``bbox/AP``, ``bbox/AP50``, ... (``segm/`` for
        masks), ``sem/mIoU``, ``sem/aAcc`` for segmentors, ``cls/top1``, ... for classifiers.

    Raises:
        TypeError / ValueError: an argument of the wrong kind (named), no checkpoint for a config.
        ConfigError: a bad config, a misspelt key of ``data``, no data.<split> and no ``data``.
        CheckpointError: an unreadable checkpoint; ``CheckpointMismatchError`` when its classes or weights do
            not fit the config, or the model's class count differs from the data's (other names or another
            order: a ``CategoryMismatchWarning``, and the evaluation runs).
        DatasetError: data that cannot be read (the message names the file).
    """
    model, checkpoint = _checkpoint_first(model, checkpoint)
    _check_arguments(model, checkpoint, split, device, progress)
    if isinstance(model, nn.Module):
        label = f"the {type(model).__name__}'s config (model.cfg)"
        return _score(model, _scored_config(model.cfg, data, split, label), progress)
    label = f"the config stored in checkpoint {checkpoint}" if model is None else str(model)
    label = "the config given (a dict)" if isinstance(model, dict) else label
    if model is not None and isinstance(data, (str, os.PathLike)):  # a data.yaml, class folders: as --data, the
        model = _with_data(model if isinstance(model, dict) else load_config(model), data, split)  # model's classes
        data = None  # (taken from the data before the model is built)
    built = init_model(model, checkpoint, device)
    return _score(built, _scored_config(built.cfg, data, split, label), progress)
