"""What a folder given as class folders really is: a split root (``ROOT/train/<class>/...``, Ultralytics'
classification layout) or a YOLO detection dataset (``images/`` + ``labels/``, a ``data.yaml``), so that
``ImageFolderDataset`` and ``detkit check`` refuse them with the folder to give instead of learning the
split or folder names as classes."""

from __future__ import annotations

import os
import shlex

from detkit.data.image_io import IMAGE_SUFFIXES

__all__ = ["SPLIT_NAMES", "hidden", "layout_mistake", "seg_check_command", "split_folders"]

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


# Folder names of a semantic segmentation dataset's images and label maps (MMSeg's img_dir / ann_dir, Pascal
# VOC's, Cityscapes'), compared case-insensitively
_SEG_IMAGES = ("img", "imgs", "img_dir", "image", "images", "jpegimages", "leftimg8bit")
_SEG_MAPS = ("ann", "anns", "annotations", "ann_dir", "mask", "masks", "segmentationclass", "gtfine", "labels")


def _stems(folder: str, depth: int = 1, limit: int = 200) -> dict[str, str]:
    """Stems of up to ``limit`` image files in ``folder`` and its sub-folders down to ``depth`` levels, each with
    the path of its first file (in name order)."""
    out: dict[str, str] = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if len(out) >= limit or hidden(entry.name):
            continue
        if entry.is_file() and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
            out.setdefault(os.path.splitext(entry.name)[0], entry.path)
        elif depth > 0 and entry.is_dir():
            for stem, path in _stems(entry.path, depth - 1, limit - len(out)).items():
                out.setdefault(stem, path)
    return out


def _one_channel(path: str) -> bool:
    """Whether the image file ``path`` has one channel, as a label map has (grey or paletted)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.mode in ("1", "L", "P", "I", "I;16", "I;16B", "I;16L")
    except OSError:
        return False


def _map_suffix(images: str, maps: str) -> str | None:
    """The ``mask_suffix`` that pairs the label maps of ``maps`` with the images of ``images`` (``.png``: same stem,
    ``_mask.png``: the image's stem + ``_mask``), or None when ``maps`` holds no one-channel file named like an image."""
    image_stems, map_stems = _stems(images), _stems(maps)
    for stem in sorted(map_stems):
        image = next((i for i in image_stems if stem == i or stem.startswith(i + "_")), None)
        if image is not None:
            if not _one_channel(map_stems[stem]):
                return None  # (class folders that happen to be named images / labels hold colour images)
            return stem[len(image) :] + os.path.splitext(map_stems[stem])[1].lower()
    return None


def seg_check_command(images: str | os.PathLike, maps: str | os.PathLike) -> str | None:
    """The ``detkit check --config`` command that checks the images of ``images`` with the label maps of ``maps``
    as a ``SegFolderDataset`` (a packaged segmentation config, its data.train set to the folders), or None when
    ``maps`` holds no one-channel file named like an image of ``images``. The classes file is a ``classes.txt``
    beside or above the folders when there is one, else ``CLASSES.txt`` (to write: one name per line)."""
    images, maps = os.fspath(images), os.fspath(maps)
    suffix = _map_suffix(images, maps)
    if suffix is None:
        return None
    parents = [maps, images, os.path.dirname(maps.rstrip("/\\")), os.path.dirname(images.rstrip("/\\"))]
    classes = next(
        (os.path.join(d, "classes.txt") for d in parents if os.path.isfile(os.path.join(d, "classes.txt"))), None
    )
    sets = [f"data.train.img_dir={shlex.quote(images)}", f"data.train.mask_dir={shlex.quote(maps)}"]
    sets.append(f"data.train.classes={shlex.quote(classes) if classes else 'CLASSES.txt'}")
    sets += [] if suffix == ".png" else [f"data.train.mask_suffix={shlex.quote(suffix)}"]
    note = "" if classes else " (CLASSES.txt: one name per line, label value = line index)"
    return f"detkit check --config {SEG_CONFIG} --split train --set {' '.join(sets)}{note}"


SEG_CONFIG = "seg/semfpn_r18_shapes"  # the packaged config whose data.train the check command sets


def _seg_layout(folder: str) -> tuple[str, str] | None:
    """``(what, check command)`` when ``folder`` is a semantic segmentation dataset (an images folder and a
    label-map folder whose files are named like the images, e.g. ``img/`` + ``ann/``, ``JPEGImages/`` +
    ``SegmentationClass/``), or None."""
    names = {d.name.lower(): d for d in _subfolders(folder)}
    images = next((names[n] for n in _SEG_IMAGES if n in names), None)
    maps = next((names[n] for n in _SEG_MAPS if n in names and names[n] is not images), None)
    if images is None or maps is None:
        return None
    command = seg_check_command(images.path, maps.path)
    if command is None:
        return None
    return f"{images.name}/ with label maps named like its images in {maps.name}/", command


def _is_coco_file(path: str) -> bool:
    """Whether ``path`` is a COCO annotation file: a JSON object with an ``images`` list and an ``annotations``
    or ``categories`` list (read whole only when its first 64 KiB name ``"images"``)."""
    import json

    try:
        with open(path, "rb") as f:
            if b'"images"' not in f.read(1 << 16):
                return False
            f.seek(0)
            data = json.load(f)
    except (OSError, ValueError):
        return False
    return (
        isinstance(data, dict)
        and isinstance(data.get("images"), list)
        and any(isinstance(data.get(k), list) for k in ("annotations", "categories"))
    )


def _coco_files(folder: str) -> list[str]:
    """The COCO annotation files in ``folder`` itself (:func:`_is_coco_file`), sorted by name."""
    names = sorted(e.name for e in os.scandir(folder) if e.is_file() and not hidden(e.name))
    return [
        os.path.join(folder, n) for n in names if n.lower().endswith(".json") and _is_coco_file(os.path.join(folder, n))
    ]


def _coco_layout(folder: str) -> str | None:
    """How to check ``folder`` when it is a COCO dataset rather than class folders (annotation files in it, or
    in split folders beside their images as Roboflow exports them: train/, valid/, test/), or None."""
    own = _coco_files(folder)
    if own:
        first = own[0]
        stem_dir = os.path.join(folder, os.path.splitext(os.path.basename(first))[0])
        img_dir = stem_dir if os.path.isdir(stem_dir) else "IMG_DIR"
        names = ", ".join(os.path.basename(p) for p in own)
        return (
            f"it holds COCO annotation files ({names}): check one with its image folder, detkit check {first} {img_dir}"
        )
    for sub in _subfolders(folder):
        if sub.name.lower() not in SPLIT_NAMES:  # (a class folder is not listed: ImageNet has 1000 of them)
            continue
        files = _coco_files(sub.path) if _holds_image(sub.path, 0) else []  # (the cheap test first)
        if files:
            return f"{sub.name}/ holds a COCO annotation file beside its images: detkit check {files[0]} {sub.path}"
    return None


def _data_yaml(folder: str) -> str | None:
    """The path of ``folder``'s data.yaml (or data.yml, any case), or None."""
    return next(
        (e.path for e in os.scandir(folder) if e.is_file() and e.name.lower() in ("data.yaml", "data.yml")), None
    )


def layout_mistake(folder: str | os.PathLike, key: str = "img_dir") -> str | None:
    """Why ``folder``, given as a folder of class folders (``key``: ``img_dir`` or ``classes``), is not one, or None.

    A YOLO detection dataset (``images/`` and ``labels/``, split folders each with them, or a ``data.yaml``): the
    message says so and how to check it. A semantic segmentation dataset (``img/`` + ``ann/`` with label maps
    named like the images, see :func:`_seg_layout`): the message names the SegFolderDataset config to use. A COCO
    dataset (annotation json files in it or in its split folders): the message gives the check command. A split root (``folder/train/<class>/...``, see :func:`split_folders`):
    the message names the split folder to give for each ``data.<split>.img_dir`` (the training one for ``classes``).
    """
    folder = os.fspath(folder)
    seg = _seg_layout(folder)
    if seg:
        return (
            f"{folder} is a semantic segmentation dataset ({seg[0]}), not class folders: a SegFolderDataset "
            "(img_dir, mask_dir, classes; docs/segmentation.md); "
            f"check it with: {seg[1]}"
        )
    coco = _coco_layout(folder)
    if coco:
        return (
            f"{folder} is a COCO detection dataset, not a folder of class folders (<class>/<image> inside it): {coco}"
        )
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
