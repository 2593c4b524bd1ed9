"""``--data DATA.yaml``: train a config's recipe on an Ultralytics ``data.yaml`` (read by ``YOLODataset``).

:func:`apply_data_yaml` rewrites a loaded config so that its datasets read the data.yaml: the innermost
dataset of ``data.train`` (below wrappers such as ``MixDataset``, whose mosaic and pipelines stay) becomes
``{type: YOLODataset, data_yaml: DATA.yaml, split: train}``, ``data.val`` the same with ``split: val`` (its
pipeline, e.g. ``LetterBox``, stays), ``data.test`` likewise when the yaml has a test split; ``ann_file`` and
``img_dir`` are removed at every level (a yaml's test split with no data.test in the config gets one shaped as
data.val, for ``eval --split test``). A model with a mask head gets ``with_masks: true``; a fixed
``model.num_classes`` becomes the number of the yaml's names (a ``null`` one is taken from the data anyway).

:func:`apply_data_folder` (:mod:`detkit.data.data_folders`, imported here too) does the same for a classifier
and a folder of class folders (``--data ROOT``).

:func:`is_data_yaml` and :func:`suggest_config` let a tool recognise a data.yaml given where a config is
expected and name the packaged config to train on it.
"""

from __future__ import annotations

import copy
import itertools
import os
from pathlib import Path
from typing import Any

import yaml

from detkit.config import ConfigError
from detkit.data.data_folders import (  # noqa: F401  (HOLD_OUT, _innermost, apply_data_folder: read from here too)
    CLASS_FOLDERS,
    CLASSIFIER_CONFIG,
    DATA_SPLITS,
    DETECTION_CONFIG,
    DETECTION_DATASETS,
    HOLD_OUT,
    SEGMENTATION_CONFIG,
    TASK_OF,
    _innermost,
    _test_like_val,
    _wraps,
    apply_data_folder,
    class_folder_splits,
)

__all__ = [
    "DATA_SPLITS",
    "apply_data_folder",
    "apply_data_yaml",
    "class_folder_splits",
    "is_data_yaml",
    "needs_masks",
    "suggest_config",
]

PATH_KEYS = ("ann_file", "img_dir")  # removed at every level: the data.yaml names the folders
# keys of a YOLODataset that --data sets itself (the others carry over from the dataset it replaces)
OWN_KEYS = ("type", "data_yaml", "split", "img_dir", "label_dir", "classes")


def _load_yaml(path: str | os.PathLike) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def is_data_yaml(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an Ultralytics dataset file (``names`` or ``nc``, and no detkit config section)."""
    if not os.path.isfile(path) or os.path.getsize(path) > 1_000_000:
        return False
    data = _load_yaml(path)
    if not isinstance(data, dict) or {"model", "data", "_base_", "optimizer", "scheduler"} & set(data):
        return False
    return ("names" in data or "nc" in data) and not isinstance(data.get("train"), dict)


def _polygon_labels(data_yaml: str | os.PathLike, limit: int = 20) -> bool | None:
    """Whether the first ``limit`` label files of the train split hold polygons (YOLO-seg lines): True, False
    (box lines only), or None when no label line was read (a .txt list of images, empty labels, a bad yaml)."""
    from detkit.data.datasets.yolo import label_path
    from detkit.data.datasets.yolo_yaml import read_data_yaml

    try:
        sources = read_data_yaml(data_yaml, "train").sources  # image folders or .txt lists of images
    except Exception:  # noqa: BLE001  (a hint only: the dataset reports a bad data.yaml itself)
        return None
    folders = [f for f in sources if Path(f).is_dir()]
    if not folders:
        return None
    labels = label_path(Path(folders[0]) / "x.jpg").parent
    found = None
    for txt in itertools.islice(labels.rglob("*.txt") if labels.is_dir() else (), limit):
        try:
            lines = [line.split() for line in txt.read_text(encoding="utf-8", errors="replace").splitlines()]
        except OSError:
            continue
        if any(len(tokens) > 5 for tokens in lines):
            return True
        if any(len(tokens) == 5 for tokens in lines):
            found = False
    return found


def suggest_config(data_yaml: str | os.PathLike | None) -> str:
    """The packaged config to train on ``data_yaml``: YOLO n-seg when its labels are polygons, a classifier for a
    folder of class folders (``--data ROOT``), else YOLO n."""
    if data_yaml is not None and class_folder_splits(data_yaml):
        return CLASSIFIER_CONFIG
    seg = data_yaml is not None and os.path.isfile(data_yaml) and _polygon_labels(data_yaml)
    return SEGMENTATION_CONFIG if seg else DETECTION_CONFIG


def needs_masks(model: Any) -> bool:
    """Whether a model config predicts instance masks (a ``mask_head``, or a ``YOLOSegHead`` or a registered
    subclass of it): ``detkit.engine.preflight_data.model_targets``, which training's preflight reads too."""
    from detkit.engine.preflight_data import MASKS, model_targets

    return isinstance(model, dict) and MASKS in model_targets(model)


def _detection_twin(config: str | None, head: str) -> str:
    """The packaged detection config of the mask config ``config`` (the same model without masks: a mask_rcnn's
    faster_rcnn, a YOLO-seg's YOLO), else a packaged one of that kind."""
    from detkit.config import packaged_configs

    name = Path(str(config or "")).name.removesuffix(".yaml")
    if head == "mask_head":
        twin, default = name.replace("mask_rcnn", "faster_rcnn", 1), "faster_rcnn_r50_fpn_1x_coco"
    else:
        twin, default = name.replace("_seg", "", 1), DETECTION_CONFIG
    return twin if twin != name and twin in packaged_configs() else default


def _refuse_model(model: Any, data_yaml: str, config: str | None) -> None:
    """A ConfigError for a model that ``data_yaml`` cannot train: a semantic segmentor (the yaml's labels are
    boxes or instance polygons), or a mask model on boxes-only labels."""
    from detkit.engine.preflight_data import SEM, model_targets

    if not isinstance(model, dict):
        return
    targets = model_targets(model)
    if SEM in targets:
        raise ConfigError(
            f"{data_yaml}: an Ultralytics data.yaml feeds a detection or instance-segmentation config, but the "
            f"config is a semantic segmentor ({targets[SEM]}); give {DETECTION_CONFIG} or {SEGMENTATION_CONFIG} "
            "(`detkit configs` lists them)"
        )
    if needs_masks(model) and _polygon_labels(data_yaml) is False:
        head = "mask_head" if model.get("mask_head") is not None else "head"
        other = _detection_twin(config, head)
        raise ConfigError(
            f"{data_yaml}: its labels are boxes (class cx cy w h), and this config's model predicts masks "
            f"(model.{head}), which need polygon labels (class x1 y1 x2 y2 ...); give a detection config such as "
            f"{other} (`detkit configs` lists them)"
        )


def _splits(data_yaml: str) -> tuple[list[str], set[str]]:
    """The class names of ``data_yaml`` (its train split checked as a dataset reads it) and its splits."""
    from detkit.data.datasets.yolo_yaml import listed_splits, read_data_yaml

    names = read_data_yaml(data_yaml, "train").names
    return names, set(listed_splits(_load_yaml(data_yaml)))  # (``validation:`` counts as val, as in Ultralytics)


def _yolo_keys() -> set[str]:
    from detkit.config_check import accepted
    from detkit.data.datasets.yolo import YOLODataset

    return set(accepted(YOLODataset)[0]) - set(OWN_KEYS)


def _point_at(spec: Any, data_yaml: str, split: str, where: str, masks: bool) -> dict:
    """``spec`` with its innermost dataset reading ``split`` of ``data_yaml`` (wrappers kept, paths removed)."""
    kind = spec.get("type") if isinstance(spec, dict) else None
    if not isinstance(kind, str):
        raise ConfigError(f"{where} must be a dataset spec (a mapping with 'type'), got {spec!r}")
    out = {k: copy.deepcopy(v) for k, v in spec.items() if k not in PATH_KEYS}
    if _wraps(kind):
        inner = out.get("dataset") or {"type": "CocoDataset"}  # (MixDataset's default inner dataset)
        out["dataset"] = _point_at(inner, data_yaml, split, f"{where}.dataset", masks)
        return out
    if kind == CLASS_FOLDERS:
        raise ConfigError(
            f"{data_yaml}: an Ultralytics data.yaml feeds a detection or instance-segmentation config, but {where} "
            f"is {kind}: a classifier reads class folders: give the folder with --data (ROOT with train/<class>/ "
            f"and val/<class>/ folders), or a detection config such as {DETECTION_CONFIG} for this data.yaml"
        )
    if kind not in DETECTION_DATASETS:
        what = TASK_OF.get(kind, "not a detection dataset")
        raise ConfigError(
            f"{data_yaml}: an Ultralytics data.yaml feeds a detection or instance-segmentation config, but {where} "
            f"is {kind} ({what}); give a detection config such as {DETECTION_CONFIG} or {SEGMENTATION_CONFIG} "
            "(`detkit configs` lists them)"
        )
    keep = _yolo_keys()
    new = {"type": "YOLODataset", "data_yaml": data_yaml, "split": split}
    new.update({k: v for k, v in out.items() if k in keep})
    if masks:
        new["with_masks"] = True
    return new


def apply_data_yaml(cfg: dict, data_yaml: str | os.PathLike, config: str | os.PathLike | None = None) -> dict:
    """A copy of ``cfg`` whose datasets read the Ultralytics ``data_yaml`` (see the module docstring).

    The data.yaml is stored by its absolute path, so that the run's config.yaml (which eval and infer of the
    run read) finds it from any folder. Raises ``DatasetError`` for a bad data.yaml (missing, no names, a
    missing train folder, no val split while the config validates) and ``ConfigError`` for a config whose
    datasets are not detection datasets, a semantic segmentor, or a mask model on boxes-only labels
    (``config``, the CONFIG argument, names the detection config of a ``mask_rcnn_*`` one).
    """
    data_yaml = os.path.abspath(os.fspath(data_yaml))
    names, have = _splits(data_yaml)
    out = copy.deepcopy(cfg)
    data = out.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("train"), dict):
        raise ConfigError(f"{data_yaml}: the config has no data.train to point at it; give a detection config")
    if isinstance(data.get("val"), dict) and "val" not in have:
        from detkit.data.validate import DatasetError

        raise DatasetError(
            f"{data_yaml}: no 'val' split, and the config validates on data.val; add val: (an image folder, "
            "relative to path:) to the data.yaml, as Ultralytics requires too"
        )
    _refuse_model(out.get("model"), data_yaml, None if config is None else os.fspath(config))
    masks = needs_masks(out.get("model"))
    _test_like_val(data, "test" in have)
    for split in DATA_SPLITS:
        spec = data.get(split)
        if not isinstance(spec, dict):
            continue
        if split not in have:  # a test set of the data the yaml replaces: not this data's
            del data[split]
            continue
        data[split] = _point_at(spec, data_yaml, split, f"data.{split}", masks)
    model = out.get("model")
    if isinstance(model, dict) and isinstance(model.get("num_classes"), int):
        model["num_classes"] = len(names)
    return out


def data_yaml_keys(cfg: dict) -> list[tuple]:
    """The key paths that :func:`apply_data_yaml` set in ``cfg``: each YOLODataset spec of the data splits
    (``('data', 'train', 'dataset')`` below a wrapper) and ``('model', 'num_classes')`` when it is a number."""
    keys = []
    for split in DATA_SPLITS:
        path, spec = ("data", split), (cfg.get("data") or {}).get(split)
        while isinstance(spec, dict) and spec.get("type") != "YOLODataset":
            path, spec = (*path, "dataset"), spec.get("dataset")
        if isinstance(spec, dict) and spec.get("data_yaml"):
            keys.append(path)
    if isinstance((cfg.get("model") or {}).get("num_classes"), int):
        keys.append(("model", "num_classes"))
    return keys
