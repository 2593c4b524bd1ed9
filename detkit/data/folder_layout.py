"""What a folder given as class folders really is: a split root (``ROOT/train/<class>/...``, Ultralytics'
classification layout) or a YOLO detection dataset (``images/`` + ``labels/``, a ``data.yaml``), so that
``ImageFolderDataset`` and ``detkit check`` refuse them with the folder to give instead of learning the
split or folder names as classes."""

from __future__ import annotations

import os

from detkit.data.image_io import IMAGE_SUFFIXES

__all__ = ["SPLIT_NAMES", "hidden", "layout_mistake", "split_folders"]

# Split folder names of an Ultralytics-style root (compared case-insensitively) -> the config's data.<split>.
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_SPLIT_ORDER = ("train", "val", "test")


def hidden(name: str) -> bool:
    """True for a name that is no class and no image: hidden (``.*``, e.g. macOS' ``._img.jpg`` AppleDouble
    files) or the ``__MACOSX`` folder that macOS' zip writes beside the data."""
    return name.startswith(".") or name == "__MACOSX"


def _subfolders(folder: str) -> list[os.DirEntry]:
    """The sub-folders of ``folder`` that are not hidden, sorted by name."""
    return sorted((d for d in os.scandir(folder) if d.is_dir() and not hidden(d.name)), key=lambda d: d.name)


def _holds_image(folder: str, depth: int, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> bool:
    """True when ``folder`` holds an image file itself, or in its sub-folders down to ``depth`` levels below it."""
    subs = []
    for entry in os.scandir(folder):
        if hidden(entry.name):
            continue
        if entry.is_file() and os.path.splitext(entry.name)[1].lower() in suffixes:
            return True
        if depth > 0 and entry.is_dir():
            subs.append(entry.path)
    return any(_holds_image(sub, depth - 1, suffixes) for sub in sorted(subs))


def split_folders(root: str | os.PathLike) -> list[tuple[str, str]]:
    """The split folders of a classification root laid out as ``root/<split>/<class>/<image>`` (Ultralytics'),
    as ``(data split: 'train' / 'val' / 'test', folder path)`` in that order; ``[]`` when ``root`` is not one.

    ``root`` is one when every sub-folder is named train, val, valid, validation or test (any case), none holds
    an image itself, and at least one holds class sub-folders with images. A folder of class folders with a
    class literally named ``train`` (its images inside it, the flat layout) is not one.
    """
    folders = _subfolders(os.fspath(root))
    if not folders or any(d.name.lower() not in SPLIT_NAMES for d in folders):
        return []
    if any(_holds_image(d.path, 0) or _images_and_labels(d.path) for d in folders):
        return []  # images directly inside: class folders named train / val; images/ + labels/: YOLO detection
    nested = [d for d in folders if any(_holds_image(c.path, 2) for c in _subfolders(d.path))]
    nested.sort(key=lambda d: (_SPLIT_ORDER.index(SPLIT_NAMES[d.name.lower()]), d.name))
    return [(SPLIT_NAMES[d.name.lower()], d.path) for d in nested]


def _images_and_labels(folder: str) -> bool:
    """True when ``folder`` holds ``images/`` and ``labels/`` (any case) and ``labels/`` holds no image itself."""
    names = {d.name.lower(): d.path for d in _subfolders(folder)}
    return "images" in names and "labels" in names and not _holds_image(names["labels"], 0)


def _yolo_layout(folder: str) -> str | None:
    """What makes ``folder`` a YOLO detection dataset rather than class folders, or None."""
    if _images_and_labels(folder):
        return "images/ and labels/ folders"
    splits = [d for d in _subfolders(folder) if d.name.lower() in SPLIT_NAMES]
    if splits and all(_images_and_labels(d.path) for d in splits):
        return f"{', '.join(d.name for d in splits)} folders, each with images/ and labels/"
    return None


def _data_yaml(folder: str) -> str | None:
    """The path of ``folder``'s data.yaml (or data.yml, any case), or None."""
    return next(
        (e.path for e in os.scandir(folder) if e.is_file() and e.name.lower() in ("data.yaml", "data.yml")), None
    )


def layout_mistake(folder: str | os.PathLike, key: str = "img_dir") -> str | None:
    """Why ``folder``, given as a folder of class folders (``key``: ``img_dir`` or ``classes``), is not one, or None.

    A YOLO detection dataset (``images/`` and ``labels/``, split folders each with them, or a ``data.yaml``): the
    message says so and how to check it. A split root (``folder/train/<class>/...``, see :func:`split_folders`):
    the message names the split folder to give for each ``data.<split>.img_dir`` (the training one for ``classes``).
    """
    folder = os.fspath(folder)
    evidence, data_yaml = _yolo_layout(folder), _data_yaml(folder)
    splits = [] if evidence else split_folders(folder)
    if splits:
        names = ", ".join(os.path.basename(path) for _, path in splits)
        given = [f"{path} for data.{split}.{key}" for split, path in splits]
        if key == "classes":
            given = [f"{next((p for s, p in splits if s == 'train'), splits[0][1])} for classes"]
        uses = ", ".join(given[:-1]) + (" and " if len(given) > 1 else "") + given[-1]
        return f"{folder} holds split folders ({names}), each with class folders: give {uses}"
    if evidence is None and data_yaml is None:
        return None
    name = None if data_yaml is None else os.path.basename(data_yaml)
    check = (
        f"check it with detkit check {data_yaml}"
        if data_yaml
        else "describe it in a data.yaml (path, train, val, names) and check it with detkit check DATA.yaml"
    )
    moved = "" if evidence else f"; if it is a folder of class folders, move {name} out of it"
    return (
        f"{folder} is a YOLO detection dataset ({evidence or 'it holds ' + name}), not a folder of class folders "
        f"(<class>/<image> inside it): {check}{moved}"
    )
