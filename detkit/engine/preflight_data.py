"""Training-start checks of the data against the model: the targets it learns from, the size it sees.

:func:`check_targets` refuses (:class:`~detkit.engine.preflight.PreflightError`, one line naming the config keys)
a model that learns instance masks (a Mask R-CNN ``mask_head``, a YOLO-seg ``head``) from a data.train built
without ``with_masks``, a segmentor whose data.train or data.val gives no semantic maps, and a data.val that would
be scored on masks or semantic maps that the model does not predict. Each of these failed before at the first
iteration, or after the first epoch's evaluation, without naming the keys.

:func:`size_warning` compares the training size (a ``MixDataset``'s or ``TiledDataset``'s output size, or the last
``LetterBox`` / ``Resize`` / ``RandomResizedCrop`` of data.train's pipeline) with data.val's (its last
``LetterBox`` / ``Resize`` / ``CenterCrop``; data.val's pipeline is also the one of ``detkit infer`` and
``detkit export``). It reads the config only, so packaged configs
are checked without data; a difference is a warning, as multi-scale recipes train at other sizes on purpose.

:func:`check_label_maps` reads the label maps of a ``SegFolderDataset`` data.train (up to 200) and data.val (all):
a value past the classes, or a map whose size is not its image's, is refused at once, 0/255 binary masks (a class
without pixels, 255 covering some) are a warning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from detkit.engine.preflight import PreflightError

logger = logging.getLogger("detkit")

MASKS, SEM = "masks", "sem_seg"
_WHAT = {MASKS: "instance masks", SEM: "semantic maps"}
_OPTION = {MASKS: "with_masks", SEM: "with_sem_seg"}
_SOURCE = {
    MASKS: "a CocoDataset or YOLODataset with with_masks: true",
    SEM: "a SegFolderDataset, or a CocoDataset with with_sem_seg: true",
}


def _is_yolo_seg(head: Any) -> bool:
    """A head config whose type is ``YOLOSegHead`` or a registered subclass of it."""
    if not isinstance(head, Mapping) or not isinstance(head.get("type"), str):
        return False
    from detkit.models.heads.yolo_seg import YOLOSegHead
    from detkit.registry import HEADS

    try:
        cls = HEADS.get(head["type"])
    except (KeyError, ValueError):  # an unknown type: building the model reports it
        return False
    return isinstance(cls, type) and issubclass(cls, YOLOSegHead)


def _type(node: Any) -> str:
    return str(node.get("type", "?")) if isinstance(node, Mapping) else type(node).__name__


def model_targets(model_cfg: Mapping[str, Any]) -> dict[str, str]:
    """``{MASKS | SEM: the part that learns it}`` for the model config ``model_cfg`` (what the evaluator reads too):
    instance masks for a ``mask_head`` or a YOLO-seg ``head``, semantic maps for a ``Segmentor`` / ``decode_head``."""
    needs: dict[str, str] = {}
    if model_cfg.get("mask_head") is not None:
        needs[MASKS] = f"model.mask_head ({_type(model_cfg['mask_head'])})"
    if _is_yolo_seg(model_cfg.get("head")):
        needs[MASKS] = f"model.head ({_type(model_cfg['head'])})"
    if model_cfg.get("type") == "Segmentor" or model_cfg.get("decode_head") is not None:
        needs[SEM] = f"model.decode_head ({_type(model_cfg.get('decode_head'))})"
    return needs


def _chain(dataset: Any, split: str) -> tuple[Any, str, list[str]]:
    """The innermost dataset under the wrappers (``MixDataset``, ``TiledDataset``: a ``dataset`` attribute), its
    config path (``data.train.dataset``) and the type names from the outside in."""
    path, names = f"data.{split}", [type(dataset).__name__]
    for _ in range(8):  # wrappers of wrappers, never a cycle
        inner = vars(dataset).get("dataset") if hasattr(dataset, "__dict__") else None
        if inner is None or not hasattr(inner, "__len__"):
            break
        dataset, path = inner, f"{path}.dataset"
        names.append(type(dataset).__name__)
    return dataset, path, names


def data_targets(dataset: Any) -> set[str]:
    """The targets the samples of ``dataset`` carry: MASKS (``with_masks``), SEM (``with_sem_seg``, or a dataset of
    label maps: ``sem_seg_dir``); read from the innermost dataset, as the wrappers pass them through."""
    inner = _chain(dataset, "")[0]
    found = {MASKS} if getattr(inner, "with_masks", False) else set()
    if getattr(inner, "with_sem_seg", False) or getattr(inner, "sem_seg_dir", None) is not None:
        found.add(SEM)
    return found


def _fix(kind: str, dataset: Any, split: str, want: bool = True) -> str:
    """``data.train.dataset.with_masks: true`` where the dataset has the option, else the dataset to give."""
    inner, path, names = _chain(dataset, split)
    if hasattr(inner, _OPTION[kind]):
        return f"{path}.{_OPTION[kind]}: {str(want).lower()}"
    shown = " of ".join(names)
    if want:
        return f"{path} ({shown}) has no {_OPTION[kind]} option: give {_SOURCE[kind]}"
    return f"{path} ({shown}) to a dataset of boxes (e.g. a CocoDataset), or train a model that predicts them"


def _head(model_cfg: Mapping[str, Any]) -> str:
    head = model_cfg.get("head") or model_cfg.get("box_head")
    return f", head {_type(head)}" if isinstance(head, Mapping) else ""


def _splits(names: list[str]) -> str:
    return " and ".join(f"data.{s}" for s in names)


def check_targets(model_cfg: Mapping[str, Any], train_set: Any, val_set: Any = None) -> None:
    """Refuse, before the first iteration, data that lacks the targets the model learns from, or a data.val that
    would be scored on targets the model does not predict; the message names the keys to set.

    Instance masks are needed in data.train only (COCO ``segm`` evaluation reads the polygons of data.val's json);
    semantic maps in both (the mIoU is computed against data.val's maps).
    """
    needs = model_targets(model_cfg)
    for kind, part in needs.items():
        splits = [("train", train_set)] + ([("val", val_set)] if kind == SEM and val_set is not None else [])
        lacking = [(s, d) for s, d in splits if kind not in data_targets(d)]
        if lacking:
            verb = "learns from" if kind == MASKS else "learns from (and is scored on)"
            raise PreflightError(
                f"{part} {verb} {_WHAT[kind]}, but {_splits([s for s, _ in lacking])} "
                f"give{'s' if len(lacking) == 1 else ''} none: set "
                + " and ".join(_fix(kind, d, s) for s, d in lacking)
            )
    if val_set is None or SEM in needs or model_cfg.get("type") == "Classifier":
        return  # a segmentor is scored on its maps, a classifier on its classes, whatever else data.val carries
    for kind in (SEM, MASKS):  # the evaluator follows data.val: semantic maps make it mIoU, masks add segm
        if kind in data_targets(val_set) and kind not in needs:
            scored = "semantic segmentation (mIoU)" if kind == SEM else "instance masks (COCO segm)"
            raise PreflightError(
                f"data.val gives {_WHAT[kind]}, so it would be scored on {scored}, but the model "
                f"({_type(model_cfg)}{_head(model_cfg)}) predicts none: set {_fix(kind, val_set, 'val', want=False)}"
            )


# ----------------------------------------------------------------------------------------------- sizes
_WRAPPER_SIZE = {"MixDataset": ("size", 640), "TiledDataset": ("tile_size", 640)}
_FIXED_SIZE = ("LetterBox", "Resize", "RandomResizedCrop", "CenterCrop")  # output (h, w) whatever the input


def _hw(value: Any) -> tuple[int, int] | None:
    """``320`` or ``[h, w]`` as ``(h, w)``; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value), int(value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return int(value[0]), int(value[1])
    return None


def _resize_size(spec: Any, where: str) -> tuple[str, tuple[int, int]] | None:
    """``(key, (h, w))`` of a transform spec with a fixed output size: ``LetterBox`` / ``RandomResizedCrop``
    (``size``), albumentations' ``Resize`` / ``CenterCrop`` (``height``, ``width``); None for any other."""
    if not isinstance(spec, dict) or spec.get("type") not in _FIXED_SIZE:
        return None
    if spec.get("size") is not None or spec["type"] == "LetterBox":
        size = _hw(spec.get("size", 640))
        return (f"{where}.size", size) if size else None
    size = _hw([spec.get("height"), spec.get("width")])
    return (f"{where}.height/width", size) if size else None


def split_size(data_cfg: dict, split: str) -> tuple[str, tuple[int, int], str] | None:
    """``(key, (h, w), what)`` of the fixed size the samples of ``data.<split>`` come out at: the last LetterBox /
    Resize / RandomResizedCrop / CenterCrop of its pipeline, else a MixDataset's ``size`` or a TiledDataset's ``tile_size``; None when no fixed size
    (e.g. ``ResizeShortestEdge``, a multi-scale resize, or no resize)."""
    node = data_cfg.get(split) if isinstance(data_cfg, dict) else None
    if not isinstance(node, dict):
        return None
    path, found = f"data.{split}", None
    wrapper = _WRAPPER_SIZE.get(str(node.get("type")))
    if wrapper:
        key, default = wrapper
        mosaic = node.get("mosaic") if isinstance(node.get("mosaic"), dict) else {}
        if node.get(key) is not None:
            found = (f"{path}.{key}", _hw(node[key]), node["type"])
        elif key == "size" and mosaic.get("size") is not None:
            found = (f"{path}.mosaic.size", _hw(mosaic["size"]), node["type"])
        else:
            found = (f"{path}.{key} (default {default})", _hw(default), node["type"])
    pipeline = node.get("pipeline")
    for i, spec in enumerate(pipeline if isinstance(pipeline, list) else []):
        size = _resize_size(spec, f"{path}.pipeline.{i}")
        if size:
            found = (*size, spec["type"])
    return found if found and found[1] else None


def _px(hw: tuple[int, int]) -> str:
    return f"{hw[0]}" if hw[0] == hw[1] else f"{hw[0]}x{hw[1]}"


def size_warning(cfg: dict) -> str | None:
    """The warning when data.train's fixed size differs from data.val's (see the module docstring), else None."""
    data = cfg.get("data") if isinstance(cfg, dict) else None
    train, val = split_size(data or {}, "train"), split_size(data or {}, "val")
    if train is None or val is None or train[1] == val[1]:
        return None
    (tkey, tsize, twhat), (vkey, vsize, vwhat) = train, val
    also = "" if "test" in data else ", as detkit infer and export run it (data.val's pipeline)"
    return (
        f"{tkey} is {_px(tsize)} ({twhat}) but {vkey} is {_px(vsize)} ({vwhat}): the model trains at {_px(tsize)} "
        f"px and is validated at {_px(vsize)} px{also}; give both the same size, unless a different training "
        "size is meant (e.g. multi-scale training)"
    )


def warn_size_mismatch(cfg: dict) -> str | None:
    """Log :func:`size_warning` as a WARNING (training goes on); return it."""
    message = size_warning(cfg)
    if message:
        logger.warning("%s", message)
    return message


# ----------------------------------------------------------------------------------------------- overlap
def innermost_dataset(dataset: Any) -> Any:
    """The dataset under the wrappers of ``dataset`` (:func:`_chain`'s), or None for None."""
    return None if dataset is None else _chain(dataset, "train")[0]


UNBUILT = object()  # the ``sample`` of untiled_val_warning when the caller did not build data.val's first sample


def _hw_text(hw: tuple[int, int]) -> str:
    return f"{int(hw[1])}x{int(hw[0])}"  # width x height, as image sizes are usually written


def untiled_val_warning(train_set: Any, val_set: Any, sample: Any = UNBUILT) -> str | None:
    """The warning when data.train is a ``TiledDataset`` but data.val scores whole images shrunk by its pipeline
    (at least 2x, measured on its first sample: ``sample`` when the caller built it already, else ``val_set[0]``):
    bbox/AP then says little (and best.pth follows it); else None."""
    from detkit.data.datasets.tiled import TiledDataset

    if not isinstance(train_set, TiledDataset) or val_set is None or isinstance(val_set, TiledDataset):
        return None
    try:
        sample = val_set[0] if sample is UNBUILT else sample
        orig, shown = tuple(int(v) for v in sample["orig_size"]), sample["image"].shape[:2]
    except Exception:  # noqa: BLE001  (a sample that does not load is check_val_sample's to report)
        return None
    shrink = max(orig[0] / max(shown[0], 1), orig[1] / max(shown[1], 1))
    if shrink < 2.0:
        return None
    th, tw = train_set.tile_size
    return (
        f"data.train is a TiledDataset of {th}x{tw} tiles but data.val scores whole images (e.g. {_hw_text(orig)}) "
        f"shrunk {shrink:.1f}x to {_hw_text(shown)} by its pipeline, so small objects vanish and bbox/AP (and "
        f"best.pth) says little; validate on tiles: make data.val a TiledDataset (tile_size: [{th}, {tw}], "
        "overlap: 0.2, dataset: the current data.val without its pipeline), or evaluate a checkpoint with "
        f"detkit eval ... --tile {th},{tw} (docs/evaluation.md, tiled evaluation)"
    )


def warn_untiled_val(train_set: Any, val_set: Any, sample: Any = UNBUILT) -> str | None:
    """Log :func:`untiled_val_warning` (of data.val's first ``sample``, when given) as a WARNING on the main
    process (training goes on); return it."""
    from detkit.engine import dist

    message = untiled_val_warning(train_set, val_set, sample) if dist.is_main_process() else None
    if message:
        logger.warning("%s", message)
    return message


def check_overlap(train_set: Any, val_set: Any) -> None:
    """Refuse a data.val that shares images with data.train when one of them is a part of a split folder
    (``val_fraction``: the two parts were drawn with other settings); warn when they share images otherwise
    (validation then scores images the model learnt)."""
    train, val = innermost_dataset(train_set), innermost_dataset(val_set)
    if not (isinstance(getattr(train, "files", None), list) and isinstance(getattr(val, "files", None), list)):
        return
    shared = {os.path.realpath(f) for f in train.files} & {os.path.realpath(f) for f in val.files}
    if not shared:
        return
    split = [s for s, d in (("train", train), ("val", val)) if getattr(d, "held_out", None) is not None]
    example = sorted(shared)[0]
    if split:
        keys = ", ".join(f"data.{s}.{k}" for s in ("train", "val") for k in ("val_fraction", "subset", "split_seed"))
        raise PreflightError(
            f"data.train and data.val share {len(shared)} image(s) (e.g. {example}): split one folder with the "
            f"same val_fraction and split_seed on both, subset train on data.train and val on data.val ({keys})"
        )
    logger.warning(
        "data.val shares %d of its %d images with data.train (e.g. %s): its scores are those of images the model "
        "learnt; hold some out (val_fraction: 0.2 with subset train / val, docs/classification.md) or give other "
        "images",
        len(shared), len(val.files), example,
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------- label maps
MAX_TRAIN_MAPS = 200  # data.train's label maps read at training start (spread over the split); data.val's: all


def _scan_maps(ds: Any, key: str, limit: int | None) -> np.ndarray:
    """Pixels per label value over the label maps of the SegFolderDataset ``ds`` (``limit``: that many, spread
    over the split); the first map with a value past the classes (other than 255), or whose size is not its image's
    (read from the image's header), is a PreflightError naming it."""
    from detkit.data.datasets.seg_folder import label_value_counts

    n = len(ds.masks)
    picks = range(n) if limit is None or n <= limit else np.linspace(0, n - 1, limit).astype(int)
    counts, c = np.zeros(256, np.int64), ds.num_classes
    for i in (int(i) for i in picks):
        sem = _read_map(ds, i, key)
        if sem is None:
            continue  # the dataset skips it, with its warning
        found, bad = label_value_counts(sem, c)
        if bad and ds.on_error != "skip":
            raise PreflightError(
                f"{key}: label map {ds.masks[i]} has value(s) {bad[:10]} but {key}.classes gives {c} classes "
                f"(values 0..{c - 1}, 255 ignored): fix the map, the classes, or map the values with "
                f"{key}.label_map (e.g. label_map: {{{bad[0]}: 255}} to ignore them)"
            )
        if not bad:
            counts += found[:256]
    return counts


def _read_map(ds: Any, i: int, key: str) -> np.ndarray | None:
    """Label map ``i`` of ``ds`` as training reads it (remapped), after comparing its size with its image's header
    (EXIF turn applied, as reading does); None when it is bad and ``on_error: skip`` leaves it to the dataset. A bad
    map or size is a PreflightError naming ``key`` and the dataset's own message; an unreadable image is the
    dataset's to report (or skip) when read."""
    from detkit.data.datasets.seg_files import image_size_as_read, size_mismatch
    from detkit.data.image_io import ImageReadError
    from detkit.data.validate import DatasetError

    try:
        sem = ds.read_label_map(i, check=False)  # remapped as training reads it (label_map, ...)
        try:
            image_hw = image_size_as_read(ds.images[i])
        except ImageReadError:
            image_hw = sem.shape  # (the sample will say so)
        if sem.shape != image_hw:
            raise DatasetError(size_mismatch(ds.masks[i], ds.images[i], sem.shape, image_hw))
    except (DatasetError, ImageReadError) as e:
        if ds.on_error == "skip":
            return None
        raise PreflightError(f"{key}: {e}") from e
    return sem


def check_label_maps(train_set: Any, val_set: Any = None, max_train: int = MAX_TRAIN_MAPS) -> None:
    """Read the label maps of a SegFolderDataset data.train (up to ``max_train``) and data.val (all) before training.

    Refuses (PreflightError naming the key, the file and the fix) a value past the classes other than 255, and a
    map whose size is not its image's (from the image's header, EXIF turn applied), which failed at the first batch
    that drew the map, or for data.val at the first evaluation, after training. Warns
    when a class has no pixel in data.train's maps while 255 (ignore) covers some: 0/255 binary masks train as
    background only and score mIoU 1.0 (see ``binary_mask_hint``). Other datasets are not read.
    """
    from detkit.data.datasets.seg_folder import SegFolderDataset, binary_mask_hint

    for split, dataset, limit in (("train", train_set, max_train), ("val", val_set, None)):
        if dataset is None:
            continue
        inner, key, _ = _chain(dataset, split)
        if not isinstance(inner, SegFolderDataset):
            continue
        counts = _scan_maps(inner, key, limit)
        hint = binary_mask_hint(counts, inner.class_names, key) if split == "train" else None
        if hint:
            logger.warning("%s", hint)
