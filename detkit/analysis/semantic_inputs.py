"""Inputs of the semantic-segmentation analysis: ``tools/infer.py``'s output folder, a folder of ground-truth label
maps, how their maps pair, and how they are read.

Ground-truth maps are read as :class:`~detkit.data.datasets.seg_folder.SegFolderDataset` reads them
(``read_label_map``: grey, palette or 16-bit PNG -> class indices, then ``reduce_zero_label`` and ``label_map``), so
the values agree with what ``detkit eval`` scores. Every mistake of input is a ``ValueError`` (or the dataset's
``DatasetError``) that names the file and the fix.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detkit.data.datasets.seg_folder import (
    check_label_map,
    check_mask_suffix,
    read_label_map,
    read_split_file,
    remap_labels,
    seg_class_names,
)

__all__ = [
    "INFER_CLASSES",
    "LabelReading",
    "MapPair",
    "check_same_size",
    "list_gt_maps",
    "pair_maps",
    "read_infer_dir",
    "reading_from_config",
    "reading_from_options",
    "select_split",
]

UNNAMED_CLASSES = 256  # without class names: values 0..255 may be classes (the table keeps those that occur)
INFER_CLASSES = "PRED_DIR/classes.txt (written by infer)"  # LabelReading.source of infer's class names


def few(items: Sequence[Any], n: int = 3) -> str:
    """The first ``n`` items, comma separated, with ``...`` when there are more."""
    return ", ".join(str(i) for i in items[:n]) + (", ..." if len(items) > n else "")


@dataclass
class MapPair:
    """One scored image: ``image`` the file infer read (images.json's ``file_name``, as given to infer), ``pred``
    its ``<stem>_labels.png`` under PRED_DIR, ``gt`` its ground-truth label map, ``path`` where to read the image
    (images.json's absolute ``path``; ``image`` for older infer folders)."""

    image: str
    pred: Path
    gt: Path
    path: str = ""

    def __post_init__(self) -> None:
        self.path = self.path or self.image


@dataclass
class LabelReading:
    """How the label maps are read and checked.

    Args:
        class_names: the classes (label value = position); None: unnamed, values 0..255 are classes.
        ignore_index: ground-truth value that is not scored (255).
        label_map, reduce_zero_label: ``SegFolderDataset``'s remapping of the ground-truth values.
        mask_suffix: the ground-truth maps' name ending (``.png``, ``_mask.png``). split_file: a text file of
            image stems (Pascal VOC's ImageSets): only those maps are scored.
        source: where the classes come from, for messages (``--classes classes.txt``, :data:`INFER_CLASSES`).
    """

    class_names: list[str] | None = None
    ignore_index: int = 255
    label_map: dict[int, int] = field(default_factory=dict)
    reduce_zero_label: bool = False
    mask_suffix: str = ".png"
    split_file: str | None = None
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.class_names else UNNAMED_CLASSES

    def read_gt(self, path: Path) -> np.ndarray:
        """A ground-truth map [H,W] as the dataset reads it; a value that is no class nor ignore is a ValueError."""
        sem = remap_labels(read_label_map(path), self.label_map, self.reduce_zero_label)
        bad = self._out_of_range(sem, self.ignore_index)
        if bad and not self.class_names:
            raise ValueError(f"ground-truth map {path} has value(s) {few(bad, 10)}: {self._unnamed()}")
        if bad:
            raise ValueError(
                f"ground-truth map {path} has value(s) {few(bad, 10)} but {self._classes_text()}: values must be "
                f"0..{self.num_classes - 1} or {self.ignore_index} (ignore); {self._gt_fix(bad)}"
            )
        return sem

    def _gt_fix(self, bad: Sequence[int]) -> str:
        """How to read a ground truth with values ``bad`` (beyond the classes): ADE20K's storage (0 = unlabelled,
        class k as k + 1, so values up to C) is read with ``reduce_zero_label``."""
        if list(bad) == [self.num_classes] and not self.reduce_zero_label:
            return (
                f"the values look stored as ADE20K's (0 = unlabelled, class k as k + 1, up to {self.num_classes}): "
                "give the model's config with --config, its data.val with reduce_zero_label: true (0 -> ignored, "
                "k -> k - 1), as detkit eval reads them; or check --classes / --background"
            )
        return (
            "check --classes / --background, or give the model's config with --config (its label_map, "
            "reduce_zero_label)"
        )

    def read_pred(self, path: Path) -> np.ndarray:
        """A predicted map [H,W] (infer's ``<stem>_labels.png``); a value >= the class count is a ValueError."""
        sem = read_label_map(path)
        bad = self._out_of_range(sem, None)
        if bad and not self.class_names:
            raise ValueError(f"prediction {path} has value(s) {few(bad, 10)}: {self._unnamed()}")
        if bad:
            raise ValueError(
                f"prediction {path} has value(s) {few(bad, 10)} but {self._classes_text()}: was it made by a model "
                "of other classes? give that model's classes (--classes FILE or --config CONFIG)"
            )
        return sem

    def _out_of_range(self, sem: np.ndarray, ignore: int | None) -> list[int]:
        values = np.unique(sem)
        return [int(v) for v in values if (v < 0 or v >= self.num_classes) and v != ignore]

    def _classes_text(self) -> str:
        return f"{self.source or 'the class list'} gives {self.num_classes} classes ({few(self.class_names, 6)})"

    @staticmethod
    def _unnamed() -> str:
        return (
            f"without class names values must be 0..{UNNAMED_CLASSES - 1}; give the classes with --classes FILE or "
            "--config CONFIG"
        )


def reading_from_options(
    classes: str | None = None,
    background: str | None = None,
    mask_suffix: str | None = None,
    split_file: str | None = None,
    ignore_index: int | None = None,
    config: Mapping[str, Any] | None = None,
    config_name: str = "CONFIG",
    infer_classes: str | os.PathLike | None = None,
) -> LabelReading:
    """The ``LabelReading`` of the command line: ``--classes FILE`` (+ ``--background``), or a config's
    ``data.val`` (a SegFolderDataset: its classes, background, label_map, reduce_zero_label, mask_suffix,
    split_file; the model's ignore_index); explicit options win over the config's. ``infer_classes``
    (PRED_DIR/classes.txt, written by tools/infer.py) names the classes when neither ``classes`` nor ``config``
    is given."""
    opts: dict[str, Any] = reading_from_config(config, config_name) if config is not None else {}
    if classes is not None:
        opts["class_names"] = seg_class_names(classes, background)
        opts["source"] = f"--classes {classes}" + (f" --background {background}" if background else "")
    elif config is None and infer_classes is not None:
        opts["class_names"] = seg_class_names(infer_classes, None)
        opts["source"] = INFER_CLASSES
    for key, value in (("mask_suffix", mask_suffix), ("split_file", split_file), ("ignore_index", ignore_index)):
        if value is not None:
            opts[key] = value
    opts["mask_suffix"] = check_mask_suffix(opts.get("mask_suffix", ".png"))
    return LabelReading(**opts)


def reading_from_config(cfg: Mapping[str, Any], name: str = "CONFIG") -> dict[str, Any]:
    """``LabelReading`` keyword arguments from a config whose ``data.val`` is a ``SegFolderDataset``."""
    val = (cfg.get("data") or {}).get("val")
    if not isinstance(val, Mapping) or val.get("type") != "SegFolderDataset":
        kind = val.get("type") if isinstance(val, Mapping) else "missing"
        raise ValueError(
            f"--config {name}: data.val is {kind}, not a SegFolderDataset (a folder of label maps); give the class "
            "names with --classes FILE instead"
        )
    names = seg_class_names(val["classes"], val.get("background"))
    model = cfg.get("model") or {}
    head = model.get("decode_head") if isinstance(model.get("decode_head"), Mapping) else {}
    opts = {
        "class_names": names,
        "source": f"--config {name} (data.val.classes)",
        "label_map": check_label_map(val.get("label_map"), len(names)),
        "reduce_zero_label": bool(val.get("reduce_zero_label", False)),
        "ignore_index": int(model.get("ignore_index", head.get("ignore_index", 255))),
    }
    for key in ("mask_suffix", "split_file"):
        if val.get(key) is not None:
            opts[key] = os.fspath(val[key])
    return opts


def read_infer_dir(pred_dir: str | os.PathLike) -> list[tuple[str, str, Path]]:
    """``(input image as given, its readable path, its label map)`` of each image of ``tools/infer.py``'s output
    folder (images.json's records with ``labels``; video frames have none). The readable path is the record's
    absolute ``path`` (``file_name`` in folders of older infer versions). A folder that is not a semantic model's
    infer output is a ValueError saying what it holds and what to give."""
    folder = Path(pred_dir)
    index = folder / "images.json"
    if not index.is_file():
        raise ValueError(
            f"PRED_DIR {folder} holds no images.json: it is not an output folder of tools/infer.py; give the "
            "--out-dir that tools/infer.py wrote for a semantic model (its <stem>_labels.png maps)"
        )
    try:
        records = json.loads(index.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{index} is not valid JSON ({e}); run tools/infer.py again into an empty folder") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError(f"{index} is not tools/infer.py's list of image records; give infer's --out-dir")
    entries = [
        (str(r.get("file_name", "")), str(r.get("path") or r.get("file_name", "")), folder / str(r["labels"]))
        for r in records
        if r.get("labels")
    ]
    if not entries:
        raise ValueError(_not_semantic(folder))
    missing = [p.name for _, _, p in entries if not p.is_file()]
    if missing:
        raise ValueError(
            f"{len(missing)} of the {len(entries)} label maps that {index} lists are missing ({few(missing)}); "
            "run tools/infer.py again into that folder"
        )
    return entries


def _not_semantic(folder: Path) -> str:
    """Why an infer output folder without label maps cannot be analysed here, and what to give instead."""
    if (folder / "predictions.json").is_file():
        return (
            f"PRED_DIR {folder} holds a detector's predictions (predictions.json, no label maps): analyse them "
            f"with `tools/analyze.py GT_JSON {folder / 'predictions.json'} --out-dir DIR`"
        )
    if (folder / "predictions.csv").is_file():
        return (
            f"PRED_DIR {folder} holds a classifier's predictions (predictions.csv, no label maps): analyse them "
            f"with `tools/analyze.py IMG_DIR {folder / 'predictions.csv'} --out-dir DIR`"
        )
    return f"PRED_DIR {folder}: its images.json lists no label map; run tools/infer.py with a semantic model"


def list_gt_maps(gt_dir: str | os.PathLike, mask_suffix: str) -> dict[str, Path]:
    """Ground-truth maps under ``gt_dir`` (recursive) by key: the path relative to ``gt_dir`` without
    ``mask_suffix`` (``sub/a`` for ``sub/a.png``)."""
    root = Path(gt_dir)
    bare = re.fullmatch(r"\.[A-Za-z0-9]+", mask_suffix) is not None  # '.png': replaces the image's file ending
    maps = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if not p.is_file():
            continue
        if bare and p.suffix == mask_suffix:
            maps[rel[: -len(p.suffix)]] = p
        elif not bare and rel.endswith(mask_suffix):
            maps[rel[: -len(mask_suffix)]] = p
    if not maps:
        raise ValueError(f"GT_LABEL_DIR {root} holds no label map (*{mask_suffix}); give the folder of the label maps")
    return maps


def select_split(maps: Mapping[str, Path], split_file: str, gt_dir: str | os.PathLike) -> dict[str, Path]:
    """The maps of ``split_file``'s stems (Pascal VOC's ImageSets), in its order; a stem without a map is a
    ValueError."""
    stems = [stem for _, stem in read_split_file(split_file)]
    absent = [s for s in stems if s not in maps]
    if absent:
        raise ValueError(
            f"{len(absent)} stem(s) of split_file {split_file} have no label map in {gt_dir} ({few(absent)}); fix "
            "the list or GT_LABEL_DIR"
        )
    return {s: maps[s] for s in stems}


def pair_maps(
    gt_dir: str | os.PathLike, pred_dir: str | os.PathLike, reading: LabelReading
) -> tuple[list[MapPair], list[str]]:
    """Pair each predicted map with the ground-truth map of its image: the longest common path suffix of the
    image's path and the map's key (``val/sub/a.jpg`` <-> ``sub/a.png``).

    With ``reading.split_file`` only the split's maps are scored: predictions of other images (infer run on all
    of JPEGImages) are left out. A prediction without a ground-truth map (without a split file), a scored map
    without a prediction, two predictions of one map, or ground-truth "maps" that are the input images
    themselves are ValueErrors that count and name them.

    Returns the pairs and the images left out (outside the split file).
    """
    from detkit.utils.file_match import lookup, suffix_index

    maps = list_gt_maps(gt_dir, reading.mask_suffix)
    gt = select_split(maps, reading.split_file, gt_dir) if reading.split_file else maps
    index = suffix_index((key, key) for key in maps)
    pairs, extra, left_out, seen = [], [], [], {}
    for image, path, pred in read_infer_dir(pred_dir):
        key = lookup(index, Path(image).with_suffix("").as_posix()) if image else None
        if key not in gt:  # no map at all, or a map outside the split
            (left_out if reading.split_file else extra).append(image or pred.name)
            continue
        if key in seen:
            raise ValueError(
                f"two predictions in {pred_dir} are of the ground-truth map {gt[key]}: {seen[key]} and {image}; "
                "analyse the predictions of one folder of images at a time"
            )
        seen[key] = image
        pairs.append(MapPair(image, pred, gt[key], path))
    if extra:
        raise ValueError(
            f"{len(extra)} predicted image(s) have no ground-truth map in GT_LABEL_DIR {gt_dir} ({few(extra)}, "
            f"looked for <stem>{reading.mask_suffix}); give the label-map folder of the images that were predicted"
        )
    _check_not_images(pairs, gt_dir)
    _check_all_predicted(gt, seen, gt_dir, pred_dir, reading.split_file)
    return pairs, left_out


def _check_all_predicted(
    gt: Mapping[str, Path], seen: Mapping[str, str], gt_dir: str | os.PathLike, pred_dir, split_file: str | None
) -> None:
    """Every scored ground-truth map has a prediction, else a ValueError counting and naming them."""
    missing = sorted(set(gt) - set(seen))
    if not missing:
        return
    names = few([os.fspath(gt[k].relative_to(gt_dir)) for k in missing])
    scope = f" of split_file {split_file}" if split_file else ""
    fix = "or fix the split file" if split_file else "or give --split-file listing the images that were predicted"
    raise ValueError(
        f"{len(missing)} of the {len(gt)} ground-truth map(s){scope} in {gt_dir} have no prediction in {pred_dir} "
        f"({names}); run tools/infer.py on their images too, {fix}"
    )


def _check_not_images(pairs: Sequence[MapPair], gt_dir: str | os.PathLike) -> None:
    """Refuse a GT_LABEL_DIR that is the folder of the predicted images (their label maps are elsewhere)."""
    for p in pairs:
        try:
            same = os.path.isfile(p.path) and os.path.samefile(p.path, p.gt)
        except OSError:
            same = False
        if same:
            raise ValueError(
                f"GT_LABEL_DIR {gt_dir} holds the images that were predicted ({p.gt}), not their label maps; give "
                "the folder of the label maps (data.val.mask_dir, e.g. data/shapes/sem/val)"
            )


def check_same_size(pair: MapPair, gt: np.ndarray, pred: np.ndarray) -> None:
    """A prediction whose size differs from its ground-truth map's is a ValueError naming both."""
    if gt.shape == pred.shape:
        return
    (gh, gw), (ph, pw) = gt.shape[:2], pred.shape[:2]
    why = (
        "sizes swapped: the image's EXIF orientation? (docs/segmentation.md)"
        if (gh, gw) == (pw, ph)
        else "was it predicted from another (resized) copy of the image?"
    )
    raise ValueError(
        f"prediction {pair.pred} is {pw}x{ph} but its ground-truth map {pair.gt} is {gw}x{gh} (image "
        f"{pair.image}); {why} Predict the images of the label maps at their size"
    )
