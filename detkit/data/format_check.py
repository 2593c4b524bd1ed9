"""``tools/check_dataset.py`` for the datasets that are not a COCO json: a YOLO ``data.yaml``, a Pascal VOC folder,
or any dataset a config describes.

The records are read by the dataset itself (``YOLODataset`` / ``VOCDataset`` built with ``on_error: skip``, then
its own ``load_annotations()``: the same parsing and the same problem reports as training), then checked as a
COCO json is (:func:`detkit.data.dataset_check.check_records`: references, boxes, every image decoded, masks where
polygons exist, per-class counts). An error is what the dataset refuses, or what ``on_error: skip`` leaves out.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from detkit.data.dataset_check import DatasetReport, check_records
from detkit.data.validate import ERROR, WARNING, DatasetError, Problem

__all__ = ["check_config_data", "check_voc", "check_yolo", "is_voc_root", "voc_roots_below", "yolo_splits"]

YOLO_CHECKED = (
    "labels: every label file and line, read by YOLODataset (class index in 0..C-1, 4 numbers or a polygon, "
    "normalised to 0..1), images and label files readable, label files without an image"
)
VOC_CHECKED = (
    "XML: every file of the split, read by VOCDataset (parses, an <annotation>, the image found, <size> equal to "
    "the image's, boxes, classes)"
)
CONFIG_SPLITS = ("train", "val", "test")


def is_voc_root(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a Pascal VOC folder (it holds ``Annotations/``); a class folder set does not."""
    return Path(path, "Annotations").is_dir()


def voc_roots_below(path: str | os.PathLike) -> list[str]:
    """The VOC folders directly inside ``path`` (``VOCdevkit/VOC2007``, ...), for a hint."""
    folder = Path(path)
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and is_voc_root(p)) if folder.is_dir() else []


def yolo_splits(data_yaml: str | os.PathLike) -> list[str]:
    """The splits a ``data.yaml`` lists (``train``, ``val``, ``test``; ``validation:`` as ``val``); a detkit config is refused with a hint."""
    from detkit.data.datasets.yolo_yaml import listed_splits

    try:
        with open(data_yaml, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return ["train"]  # YOLODataset names what is wrong with the file
    if isinstance(data, dict) and "names" not in data and ({"model", "_base_", "data"} & set(data)):
        raise DatasetError(
            f"{data_yaml} is a detkit config, not a YOLO data.yaml (path, train, val, names); check the datasets "
            f"it describes with: detkit check --config {data_yaml}"
        )
    return listed_splits(data) or ["train"]


def _built(build: Callable[[], Any]) -> Any:
    """The dataset ``build()`` makes, its warnings silenced (the check reports every problem itself)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build()


def _read_records(dataset: Any) -> tuple[dict, list[Problem]]:
    """The dataset's own ``load_annotations()``: its COCO records, its problems and its warnings (as warnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data, found = dataset.load_annotations()
    notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    kinds = {m: "unused_files" if "have no image" in m else "load_warning" for m in notes}  # YOLO: orphan labels
    found = [p for p in found if p.kind != "bad_annotation"]  # the image of a bad label: the label is the error
    return data, found + [Problem(kind, m, severity=WARNING) for m, kind in kinds.items()]


def _check_built(dataset: Any, split: str, source_line: str, options: dict) -> DatasetReport:
    """Every check of a built ``CocoDataset`` (or subclass) on the records its ``load_annotations()`` reads."""
    data, found = _read_records(dataset)
    if options.get("masks") is None and (dataset.with_masks or dataset.with_sem_seg):
        options = {**options, "masks": True}
    report = check_records(data, dataset.ann_file, dataset.img_dir, found, source_line, **options)
    report.split = split
    crowd = report.summary.get("crowd", 0)
    if getattr(dataset, "keep_difficult", True) is False and crowd:
        report.notes.append(f"difficult objects: {crowd} (crowd regions, as VOCDataset reads them: not trained on)")
    return report


def check_yolo(
    data_yaml: str | os.PathLike, splits: Sequence[str] | None = None, **options: Any
) -> list[DatasetReport]:
    """Check the ``splits`` (default: every split it lists) of an Ultralytics ``data.yaml``, as YOLODataset reads it.

    ``options``: :func:`check_records`'s ``read_images``, ``max_outside``, ``masks``, ``progress``.
    Raises :class:`DatasetError` for a file that is no data.yaml, or for a split named in ``splits`` that cannot
    be read. With every listed split (``splits`` None), a split that cannot be read (its folder missing, ...)
    becomes that split's report with the reason (an error for train / val, a warning for test: Ultralytics
    trains without it) and the other splits are still checked; it raises only when no split can be read.
    """
    from detkit.data.datasets.yolo import YOLODataset

    src = os.fspath(data_yaml)
    reports, failed = [], []
    for split in splits or yolo_splits(src):
        try:
            dataset = _built(lambda s=split: YOLODataset(data_yaml=src, split=s, on_error="skip"))
        except DatasetError as e:
            if splits:
                raise
            failed.append(e)
            reports.append(_unreadable_split(src, split, e))
            continue
        reports.append(_check_built(dataset, f"split {split}", YOLO_CHECKED, dict(options)))
    if len(failed) == len(reports):
        raise failed[0]  # nothing could be read: the file itself (or every split) is wrong
    return reports


def _unreadable_split(src: str, split: str, error: DatasetError) -> DatasetReport:
    """The report of a listed split that YOLODataset cannot read: the reason, an ERROR (train / val; training
    refuses it) or a WARNING (test: Ultralytics trains and validates without it)."""
    severity = WARNING if split == "test" else ERROR
    problem = Problem("unreadable_split", f"split {split} not checked: {error}", severity=severity)
    checked = [f"nothing: YOLODataset cannot read split {split} (see the {severity} above)"]
    return DatasetReport(src, "(not read)", [problem], checked=checked, split=f"split {split}")


def check_voc(
    root: str | os.PathLike, split: str | None = None, classes: str | None = None, **options: Any
) -> DatasetReport:
    """Check a Pascal VOC folder as VOCDataset reads it: the ids of ``ImageSets/Main/<split>.txt``, or every XML
    file in ``Annotations/`` when ``split`` is None; ``classes`` a text file (default: the XML names, sorted)."""
    from detkit.data.datasets.voc import VOCDataset

    dataset = _built(lambda: VOCDataset(root=os.fspath(root), split=split, classes=classes, on_error="skip"))
    label = "every XML file in Annotations/" if split is None else f"split {split}"
    report = _check_built(dataset, label, VOC_CHECKED, dict(options))
    listed = Path(root, "classes.txt")
    if classes is None and listed.is_file():
        report.notes.append(f"classes: the XML names, sorted (--classes {listed} checks them against that list)")
    return report


def _split_spec(cfg: dict, split: str, source: str) -> dict:
    """``data.<split>`` of a config, to be built raw (no pipeline, no cache) with ``on_error: skip``."""
    data = cfg.get("data") or {}
    if not isinstance(data.get(split), dict):
        have = [s for s in CONFIG_SPLITS if isinstance(data.get(s), dict)]
        raise DatasetError(f"{source} has no data.{split} dataset (it has: {', '.join(have) or 'none'}); see --split")
    spec = copy.deepcopy(data[split])
    spec.update(pipeline=None, on_error="skip")
    for part in (spec, spec.get("dataset")):
        if isinstance(part, dict) and part.get("cache"):
            part["cache"] = False  # checking reads every image once: filling a cache would read them twice
    return spec


def _left_out(dataset: Any) -> str:
    """What the dataset, built as configured with ``on_error: skip``, left out (its ``skipped.counts``)."""
    counts = dataset.skipped.counts
    parts = []
    for record in ("image", "annotation"):
        kinds = {k.split(":", 1)[1]: n for k, n in sorted(counts.items()) if k.startswith(f"{record}:") and n}
        detail = f" ({', '.join(f'{k} {n}' for k, n in kinds.items())})" if kinds else ""
        parts += [f"{sum(kinds.values())} {record}(s){detail}"] if kinds else []
    return "built as configured with on_error: skip, it leaves out " + (" and ".join(parts) or "nothing")


def _inner(dataset: Any) -> Any:
    """The dataset under wrappers (``MixDataset``, ``TiledDataset``: their ``dataset`` attribute)."""
    while "dataset" in vars(dataset) and hasattr(vars(dataset)["dataset"], "__getitem__"):
        dataset = vars(dataset)["dataset"]
    return dataset


def check_config_data(
    cfg: dict, source: str, splits: Sequence[str] | None = None, **options: Any
) -> list[DatasetReport | Any]:
    """Check the datasets of a loaded config (``data.train``, ``data.val``, ``data.test``, or ``splits``).

    Each is built as configured, raw and with ``on_error: skip``; a ``CocoDataset`` (COCO, YOLO, VOC, under a
    wrapper too) gets every check of :func:`check_records` on the records its own ``load_annotations()`` reads,
    and a line with what it left out; an ``ImageFolderDataset`` the classification checks, a ``SegFolderDataset``
    those of :func:`detkit.data.seg_folder_check.check_seg_folder`. Other types raise
    :class:`DatasetError`. When data.train and data.val are both checked, the report of data.val gets the error
    ``category_mismatch`` where training would refuse their categories (``detkit.engine.preflight.check_categories``).
    """
    from detkit.data.build import build_dataset
    from detkit.data.datasets.coco import CocoDataset
    from detkit.data.datasets.image_folder import ImageFolderDataset
    from detkit.data.datasets.seg_folder import SegFolderDataset
    from detkit.data.folder_check import check_image_folder
    from detkit.data.seg_folder_check import check_seg_folder

    data = cfg.get("data") or {}
    splits = list(splits or [s for s in CONFIG_SPLITS if isinstance(data.get(s), dict)])
    if not splits:
        raise DatasetError(f"{source} has no data.train / data.val dataset to check")
    reports, built = [], {}
    for split in splits:
        spec = _split_spec(cfg, split, source)
        dataset = built[split] = _inner(_built(lambda spec=spec: build_dataset(spec)))
        if isinstance(dataset, CocoDataset):
            line = f"records: as {type(dataset).__name__} reads them (data.{split} of {source})"
            report = _check_built(dataset, f"data.{split}", line, dict(options))
            report.notes.append(_left_out(dataset))
        elif isinstance(dataset, ImageFolderDataset):
            read, progress = options.get("read_images", True), options.get("progress", False)
            split_args = dataset.holdout.kwargs() if dataset.holdout is not None else None
            report = check_image_folder(
                dataset.img_dir, dataset.ann_file, dataset.class_names, read, progress, split=split_args
            )
        elif isinstance(dataset, SegFolderDataset):
            read, progress = options.get("read_images", True), options.get("progress", False)
            report = check_seg_folder(dataset, f"data.{split} of {source}", read, progress)
        else:
            raise DatasetError(
                f"data.{split} of {source} is a {type(dataset).__name__}: check_dataset reads COCO, YOLO, VOC, "
                "classification and segmentation-folder datasets; tools/browse_dataset.py draws its samples"
            )
        reports.append(report)
    problem = _categories_problem(built["train"], built["val"]) if {"train", "val"} <= set(built) else None
    if problem:
        reports[splits.index("val")].problems.append(problem)
    return reports


def _categories_problem(train_set: Any, val_set: Any) -> Problem | None:
    """The error training stops on when data.train and data.val disagree on categories (names, order or ids)."""
    from detkit.engine.preflight import PreflightError, check_categories

    try:
        check_categories(train_set, val_set)
    except PreflightError as e:
        return Problem("category_mismatch", str(e))
    return None
