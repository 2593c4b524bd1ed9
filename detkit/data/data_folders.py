"""``--data ROOT``: train or score a classifier on a folder of class folders, and what both ``--data`` forms share.

:func:`apply_data_folder` points a classifier config at a folder of class folders (Ultralytics' classification
layout ``ROOT/{train,val}/<class>/<image>``): the ``ImageFolderDataset`` of each split reads ``ROOT/<split>``
(``valid`` / ``validation`` count as val), val and test take train's classes. One folder of class folders
(``ROOT/<class>/<image>``) with a config that validates is split in place: data.train and data.val both read ROOT,
data.val the ``HOLD_OUT`` share of each class (``val_fraction``, ``subset``), as Ultralytics splits such a folder
80/20 (it copies the images into a new folder; detkit writes nothing).

The splits, the dataset kinds, the packaged configs the messages name and the spec helpers (wrappers, the test
split) are shared with :mod:`detkit.data.data_arg` (``--data DATA.yaml``), which imports them from here.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from detkit.config import ConfigError

DATA_SPLITS = ("train", "val", "test")
HOLD_OUT = 0.2  # share of each class validated on when --data is one folder of class folders (Ultralytics' 80/20)
# datasets whose samples (boxes, masks) a YOLODataset gives as well: their options carry over
DETECTION_DATASETS = ("CocoDataset", "YOLODataset", "VOCDataset")
TASK_OF = {
    "ImageFolderDataset": "class folders for a classifier",
    "CocoCropsDataset": "object crops for a classifier",
    "SegFolderDataset": "semantic-segmentation maps",
}
DETECTION_CONFIG, SEGMENTATION_CONFIG, CLASSIFIER_CONFIG = "yolo_n_coco", "yolo_n_seg_coco", "resnet18_shapes"
CLASS_FOLDERS = "ImageFolderDataset"  # the dataset of a classifier that reads class folders


def _wraps(type_name: str) -> bool:
    """Whether the registered dataset ``type_name`` wraps another one (it takes a ``dataset``)."""
    import detkit.data.datasets  # noqa: F401  (registers every dataset)
    from detkit.config_check import accepted
    from detkit.registry import DATASETS

    return type_name in DATASETS and "dataset" in accepted(DATASETS.get(type_name))[0]


def class_folder_splits(root: str | os.PathLike) -> list[tuple[str, str]]:
    """The splits of the class-folder dataset ``root`` as ``(split, folder)``: those of a split root
    (:func:`~detkit.data.folder_layout.split_folders`), ``[('train', root)]`` for one folder of class folders
    (``root/<class>/<image>``), ``[]`` for anything else (a YOLO dataset, a folder of images, a file)."""
    from detkit.data.folder_layout import _holds_image, layout_mistake, split_folders

    root = os.fspath(root)
    if not os.path.isdir(root):
        return []
    splits = split_folders(root)
    if splits:
        return splits
    if layout_mistake(root) is not None or _holds_image(root, 0):
        return []
    subs = [e.path for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")]
    return [("train", root)] if any(_holds_image(sub, 1) for sub in subs) else []


def _test_like_val(data: dict, has_test: bool) -> None:
    """Give ``data`` a test section shaped as its val one (same pipeline), when the data has a test split and the
    config no data.test (``eval --split test`` scores it; the run's config.yaml keeps it)."""
    if has_test and not isinstance(data.get("test"), dict) and isinstance(data.get("val"), dict):
        data["test"] = copy.deepcopy(data["val"])


def _innermost(spec: dict) -> tuple[dict, tuple]:
    """The innermost dataset spec below wrappers (``dataset`` keys) of ``spec``, and its key path below it."""
    path: tuple = ()
    while isinstance(spec.get("type"), str) and _wraps(spec["type"]) and isinstance(spec.get("dataset"), dict):
        spec, path = spec["dataset"], (*path, "dataset")
    return spec, path


def _segmentor_folder(root: str, arg: str, api: bool) -> str:
    """Why a folder is refused as the data of a semantic segmentor, and how to give its two folders instead."""
    from detkit.data.folder_layout import _seg_layout

    held = f"; it holds {_seg_layout(root)}" if _seg_layout(root) else ""
    fix = "data={'img_dir': IMAGES, 'mask_dir': LABEL_MAPS}" if api else "--set data.val.img_dir=IMAGES"
    fix += "" if api else " data.val.mask_dir=LABEL_MAPS (data.train.* to train), without --data"
    return (
        f"{arg}{root} is a folder, and a semantic segmentor reads images and label maps from two folders (img_dir, "
        f"mask_dir{held}): give {fix}"
    )


def _not_class_folders(root: str, kind: Any, arg: str = "--data ", api: bool = False) -> str:
    """Why ``root`` (given as ``arg``: ``--data`` or ``data=``) is refused when it holds no class folders (``kind``)."""
    from detkit.data.folder_layout import _data_yaml, layout_mistake

    if kind != CLASS_FOLDERS:
        found = _data_yaml(root)
        inside = f" ({found} is in it: {arg}{found})" if found else ""
        coco = ", or a dict {'ann_file': JSON, 'img_dir': IMAGES} for COCO annotations" if api else ""
        return f"{arg}{root} is a folder; give the dataset's data.yaml (keys path, train, val, names){inside}{coco}"
    mistake = layout_mistake(root)
    if mistake:
        return f"{arg}{root}: {mistake}; train a detection config such as {DETECTION_CONFIG} on its data.yaml"
    return (
        f"{arg}{root} holds no class folders with images; a classifier reads {root}/train/<class>/<image> and "
        f"{root}/val/<class>/<image> (or {root}/<class>/<image>, one split)"
    )


def _refuse_missing_splits(root: str, found: dict, data: dict, val_set: bool, arg: str = "--data ") -> None:
    """A ConfigError when ``found`` (split -> folder) lacks train, or val while the config validates."""
    if "train" not in found:
        raise ConfigError(
            f"{arg}{root} holds split folders ({', '.join(found)}) but no train/ folder; add "
            f"{root}/train/<class>/<image> (Ultralytics' classification layout)"
        )
    if "val" in found or not isinstance(data.get("val"), dict) or val_set or found["train"] == root:
        return  # one folder of class folders: HOLD_OUT of it validates (apply_data_folder)
    raise ConfigError(
        f"{arg}{root}: no val split (val/, valid/ or validation/ beside train/), and the config validates on "
        f"data.val; add {root}/val/<class>/<image>, or --set data.val=null to train without validation"
    )


def apply_data_folder(
    cfg: dict, root: str | os.PathLike, val_set: bool = False, hold_out: bool = True, api: bool = False
) -> tuple[dict, list[tuple]]:
    """A copy of ``cfg`` whose classifier datasets read the class folders of ``root`` (see the module docstring),
    and the key paths it set. ``val_set``: the user's ``--set`` sets data.val (e.g. ``data.val=null``), so a
    root without a val split is not refused. ``hold_out`` False (scoring, ``eval --data``): one folder of class
    folders is data.val whole, nothing held out. The split keys of an earlier run (``val_fraction``, ``subset``,
    ``split_seed``) are set only where this data is split in place. Raises ``ConfigError`` for a root that holds
    no class folders, a config whose data.train is not an ImageFolderDataset (naming a classifier config, or for a
    segmentor how to give its image and label-map folders), or a missing split; ``api``: the messages name
    ``detkit.evaluate``'s ``data=`` instead of ``--data``."""
    from detkit.data.datasets.image_folder import HoldOut, resolve_classes

    root, arg = os.path.abspath(os.fspath(root)), "data=" if api else "--data "
    out = copy.deepcopy(cfg)
    data = out.get("data")
    model = out.get("model") if isinstance(out.get("model"), dict) else {}
    if model.get("type") == "Segmentor" or model.get("decode_head") is not None:  # (no torch imported)
        raise ConfigError(_segmentor_folder(root, arg, api))
    if not isinstance(data, dict) or not isinstance(data.get("train"), dict):
        raise ConfigError(f"{arg}{root}: the config has no data.train to point at it; give a classifier config")
    kind = _innermost(data["train"])[0].get("type")
    splits = class_folder_splits(root)
    if not splits:
        raise ConfigError(_not_class_folders(root, kind, arg, api))
    if kind != CLASS_FOLDERS:
        what = "a detection dataset" if kind in DETECTION_DATASETS else TASK_OF.get(kind, "not class folders")
        raise ConfigError(
            f"{arg}{root} is a class-folder (classification) dataset (<class>/<image> folders), but data.train "
            f"is {kind} ({what}); use a classifier config such as {CLASSIFIER_CONFIG} (`detkit configs` lists them)"
        )
    found = dict(splits)
    _refuse_missing_splits(root, found, data, val_set, arg)
    _test_like_val(data, "test" in found)
    flat = found == {"train": root} and isinstance(data.get("val"), dict) and not val_set
    held_out = flat and hold_out  # one folder of class folders and a config that validates: HOLD_OUT of each class
    if flat:
        found["val"] = root
    keys = []
    for split in DATA_SPLITS:
        spec = data.get(split)
        if not isinstance(spec, dict) or split not in found:
            if isinstance(spec, dict) and split == "test":  # a test set of the config's data: not this data's
                del data[split]
            continue
        inner, path = _innermost(spec)
        if inner.get("type") != CLASS_FOLDERS:
            raise ConfigError(f"{arg}{root}: data.{split} is {inner.get('type')}, not {CLASS_FOLDERS}")
        classes = None if split == "train" else found["train"]
        inner.update(img_dir=found[split], ann_file=None, classes=classes)
        keys += [("data", split, *path, k) for k in ("img_dir", "ann_file", "classes")]
        for key in HoldOut.KEYS:  # a part of another folder (a run split in place): not this data's
            inner.pop(key, None)
        if held_out and split in ("train", "val"):
            split_args = HoldOut(HOLD_OUT, split, 0).kwargs()
            inner.update(split_args)
            keys += [("data", split, *path, k) for k in split_args]
    model = out.get("model")
    if isinstance(model, dict) and isinstance(model.get("num_classes"), int):
        model["num_classes"] = len(resolve_classes(found["train"]) or ())
        keys.append(("model", "num_classes"))
    return out, keys
