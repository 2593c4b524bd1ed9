"""``YOLODataset``: train on an Ultralytics-style dataset (``data.yaml``, ``images/``, ``labels/*.txt``) as it is."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from detkit.data.converters.common import IMAGE_EXTS, list_images
from detkit.data.converters.yolo import yolo_records
from detkit.data.datasets.coco import CocoDataset
from detkit.data.datasets.formats import CocoOptions, ProblemLog, Unpack, coco_dict, warn_unused_files
from detkit.data.datasets.seg_folder import load_class_names
from detkit.data.validate import DatasetError, Problem
from detkit.registry import DATASETS

__all__ = ["YOLODataset", "label_path", "read_data_yaml"]

SPLITS = ("train", "val", "test")


def label_path(image: Path, img_dir: Path | None = None, label_dir: Path | None = None) -> Path:
    """The label file of an image: ``label_dir/<path relative to img_dir>.txt`` when ``label_dir`` is given, else
    Ultralytics' rule: the last ``/images/`` of the path becomes ``/labels/`` (``d/images/train/a.jpg`` ->
    ``d/labels/train/a.txt``; without an ``images`` folder, the ``.txt`` lies beside the image)."""
    if label_dir is not None:
        return label_dir / image.relative_to(img_dir).with_suffix(".txt")
    part = f"{os.sep}images{os.sep}"
    return Path(f"{os.sep}labels{os.sep}".join(os.fspath(image).rsplit(part, 1))).with_suffix(".txt")


def _names(names: Any, src: str) -> list[str]:
    """The class names of ``names:``, a list or a ``{0: name, 1: ...}`` mapping with keys 0..C-1."""
    if isinstance(names, dict):
        keys = sorted(names, key=lambda k: (not isinstance(k, int), str(k)))
        if keys != list(range(len(keys))):
            raise DatasetError(
                f"{src}: the keys of 'names' must be the class indices 0..{len(keys) - 1}, got {keys[:10]}; "
                "number the classes from 0"
            )
        names = [names[k] for k in keys]
    if not isinstance(names, list) or not names or not all(isinstance(n, (str, int)) for n in names):
        raise DatasetError(
            f"{src}: 'names' must be a non-empty list of class names or a mapping {{0: name, ...}}, got {names!r}"
        )
    names = [str(n) for n in names]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DatasetError(f"{src}: class names {dup} appear twice in 'names'; each class must appear once")
    return names


def read_data_yaml(path: str | os.PathLike, split: str) -> tuple[list[Path], list[str]]:
    """The image folders of ``split`` and the class names of an Ultralytics ``data.yaml``.

    ``path:`` (the dataset root) is relative to the yaml's folder, and is that folder when absent; the split
    (one folder or a list of folders) is relative to the root. ``nc:``, when given, must equal the number of names.
    """
    src = os.fspath(path)
    if not os.path.isfile(src):
        state = "is a folder, not a file" if os.path.isdir(src) else "not found"
        raise DatasetError(f"data_yaml {src} {state}; give the dataset's data.yaml (keys path, train, val, names)")
    try:
        with open(src, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise DatasetError(f"{src}: not valid YAML ({e}); fix the file") from e
    if not isinstance(data, dict) or "names" not in data:
        raise DatasetError(f"{src}: a data.yaml is a mapping with 'names' and the split folders (train, val)")
    names = _names(data["names"], src)
    if "nc" in data and data["nc"] != len(names):
        raise DatasetError(f"{src}: nc is {data['nc']} but 'names' lists {len(names)} classes; make them agree")
    if split not in data or data[split] in (None, ""):
        have = [k for k in SPLITS if data.get(k)]
        raise DatasetError(f"{src}: no '{split}' split (it has {', '.join(have) or 'none'}); set split: to one of them")
    root = Path(src).parent / str(data.get("path") or ".")
    entries = data[split] if isinstance(data[split], list) else [data[split]]
    folders = []
    for entry in entries:
        folder = root / str(entry)
        if folder.suffix == ".txt" or not folder.is_dir():
            what = "a list of image files" if folder.suffix == ".txt" else "not a folder"
            raise DatasetError(
                f"{src}: {split}: {entry} ({folder}) is {what}; give the split's image folder (or a list of "
                "folders), relative to path:"
            )
        folders.append(folder)
    return folders, names


@DATASETS.register
class YOLODataset(CocoDataset):
    """An Ultralytics-style detection / segmentation dataset, read as it is (no conversion step).

    Give ``data_yaml`` (``path``, ``train``, ``val``, ``test``, ``names``, as Ultralytics writes it, see
    :func:`read_data_yaml`) and ``split``, or an ``img_dir`` with ``classes``. Each image under the split's
    folders (recursively) takes its labels from ``label_dir/<relative path>.txt`` when ``label_dir`` is given,
    else from Ultralytics' sibling ``labels/`` folder (:func:`label_path`). A line is ``class cx cy w h`` (a
    box) or ``class x1 y1 x2 y2 ...`` (a polygon: its mask with ``with_masks``), normalised to 0..1, ``class``
    a 0-based index into the names. Image sizes are read from the image headers.

    Samples, labels and checks are ``CocoDataset``'s (category ids are ``class + 1``; ``coco`` holds the
    records, for COCO evaluation). Problems named by file and line (a :class:`DatasetError`, or with
    ``on_error: skip`` the line or image left out with one warning counting them): a class index out of range,
    a malformed line, coordinates outside 0..1, an unreadable image or label file, an image that points
    outside its folder (a link). An image without a label file (or with an empty one) is a negative; label
    files without an image are named in a warning.

    Args:
        data_yaml: the dataset's ``data.yaml``. split: ``'train'``, ``'val'`` or ``'test'`` (a key of it).
        img_dir: an image folder (instead of ``data_yaml``). label_dir: the label folder (default: the
            sibling ``labels/`` folder). classes: the class names without ``data_yaml`` (a list or a text file,
            one name per line). **options: ``CocoDataset``'s (pipeline, with_masks, on_error, cache, ...).
    """

    def __init__(
        self,
        data_yaml: str | None = None,
        split: str = "train",
        img_dir: str | None = None,
        label_dir: str | None = None,
        classes: str | Sequence[str] | None = None,
        on_error: str = "raise",
        **options: Unpack[CocoOptions],
    ):
        if (data_yaml is None) == (img_dir is None):
            raise DatasetError("YOLODataset: give either data_yaml (with split) or img_dir (with classes)")
        if data_yaml is not None:
            if classes is not None:
                raise DatasetError(f"YOLODataset: the classes come from the 'names' of {data_yaml}; remove classes")
            self.folders, self.yolo_names = read_data_yaml(data_yaml, split)
        else:
            if classes is None:
                raise DatasetError(f"YOLODataset: img_dir {img_dir} needs classes (a list, or a classes.txt file)")
            self.folders, self.yolo_names = [Path(img_dir)], load_class_names(classes)
        self.folders = [Path(os.path.abspath(f)) for f in self.folders]
        self.data_yaml, self.split = data_yaml, split
        self.label_dir = None if label_dir is None else Path(label_dir)
        if self.label_dir is not None and len(self.folders) > 1:
            raise DatasetError(f"{data_yaml}: label_dir applies to one image folder, the {split} split has several")
        root = Path(os.path.commonpath(self.folders))
        super().__init__(ann_file=data_yaml or img_dir, img_dir=root, on_error=on_error, **options)

    def check_hint(self) -> str:
        if self.data_yaml is None:  # no file the tool can take: the config that describes this dataset
            return "run detkit check --config CONFIG (the config of this dataset) for the details"
        return f"run detkit check {self.data_yaml} --split {self.split} for the details"

    def load_annotations(self) -> tuple[dict, list[Problem]]:
        """The labels of every image of the split's folders as a COCO dict; problems found on the way."""
        log, root = ProblemLog(), Path(self.img_dir)
        images, label_folders = [], []
        for folder in self.folders:
            files = list_images(folder, "img_dir")
            if not files:
                raise DatasetError(f"{self.ann_file}: image folder {folder} holds no images ({', '.join(IMAGE_EXTS)})")
            labels = self._label_folder(folder)
            images += [p for p in files if log.image_path(root, p.relative_to(root).as_posix(), os.fspath(p))]
            label_folders.append(labels)
        recs, anns, _, used = yolo_records(root, images, self._label_of, self.yolo_names, log)
        orphans = [t for d in label_folders if d.is_dir() for t in sorted(d.rglob("*.txt")) if t.resolve() not in used]
        warn_unused_files(
            [t for t in orphans if t.name != "classes.txt"],
            "label file(s) have no image",
            "add the images or remove them",
        )
        return coco_dict(recs, anns, self.yolo_names, self.ann_file), log.problems

    def _label_of(self, image: Path) -> Path:
        return label_path(image, Path(self.img_dir), self.label_dir)

    def _label_folder(self, folder: Path) -> Path:
        """The label folder of an image folder; a DatasetError when it does not exist (no image could have labels)."""
        labels = self.label_dir if self.label_dir is not None else label_path(folder / "x.png").parent
        if not labels.is_dir():
            raise DatasetError(
                f"{self.ann_file}: label folder {labels} (for the images in {folder}) not found; YOLO labels lie in "
                f"the sibling labels/ folder (images/train/a.jpg -> labels/train/a.txt), or give label_dir"
            )
        return labels
