"""A folder of images + a folder of PNG label maps with the same file stems, as a semantic dataset."""

from __future__ import annotations

import os
import re
import unicodedata
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch.utils.data
from PIL import Image

from detkit.data.image_io import IMAGE_SUFFIXES, ImageReadError, read_image
from detkit.data.validate import DatasetError, SkippedRecords, check_on_error
from detkit.registry import DATASETS

__all__ = [
    "SegFolderDataset",
    "binary_mask_hint",
    "check_mask_suffix",
    "label_map_path",
    "load_class_names",
    "nfc",
    "read_label_map",
]

IGNORE = 255
_EXTENSION = re.compile(r"\.[A-Za-z0-9]+")  # a bare file ending: ".png"
_SUFFIX = re.compile(r"[^/\\]*\.[A-Za-z0-9]+")  # text the label map's name ends with, with its ending: "_mask.png"


def load_class_names(classes: str | os.PathLike | Sequence[str]) -> list[str]:
    """``classes`` as a list of names: a list as is, or a text file with one name per line (blank lines skipped).

    Names are Unicode NFC-normalised, so that a name typed on one system matches the same name written
    (decomposed, NFD) by another, e.g. macOS' folder names."""
    if isinstance(classes, (str, os.PathLike)):
        path = os.fspath(classes)
        if not os.path.isfile(path):
            raise DatasetError(_missing_classes(path))
        with open(path, encoding="utf-8-sig") as f:  # -sig: a byte-order mark (Windows Notepad) is no name
            names = [nfc(line.strip()) for line in f if line.strip()]
        if not names:
            raise DatasetError(f"classes file {path} is empty; write one class name per line")
        return names
    names = [nfc(str(n)) for n in classes]
    if not names:
        raise DatasetError("classes is an empty list; give the class names (label value = index)")
    return names


def nfc(name: str) -> str:
    """``name`` in Unicode normal form C (composed: 'é' as one character, as most keyboards type it)."""
    return unicodedata.normalize("NFC", name)


def _missing_classes(path: str) -> str:
    """Why ``classes`` (a path that is no file) cannot be read: a folder or a file not found, or a folder."""
    from detkit.data.coco_file import where_read

    if os.path.isdir(path):
        return f"classes {path} is a folder; give a text file with one class name per line or a list of names"
    if not os.path.splitext(path.rstrip("/\\"))[1]:  # no file ending: the value names a folder
        return (
            f"classes folder {path} not found{where_read(path)}; give the folder whose sub-folders name the "
            "classes (the training split's img_dir: data.val.classes=<data.train.img_dir>), a text file with one "
            "class name per line, or a list of names"
        )
    return (
        f"classes file {path} not found{where_read(path)}; give a text file with one class name per line "
        f"(label value = line index) or a list of names"
    )


def check_mask_suffix(mask_suffix: Any) -> str:
    """``mask_suffix`` as given when it ends with a file ending (``.png``, ``_mask.png``), else a DatasetError."""
    if not isinstance(mask_suffix, str) or not _SUFFIX.fullmatch(mask_suffix):
        raise DatasetError(
            f"mask_suffix {mask_suffix!r} is not a label-map file ending: give '.png' (a.jpg <-> a.png) or the text "
            "after the image's stem, ending in the file ending: '_mask.png' (a.jpg <-> a_mask.png), "
            "'_gtFine_labelTrainIds.png'; no folder"
        )
    return mask_suffix


def label_map_path(rel: Path, mask_suffix: str) -> Path:
    """The label map's path (relative, like ``rel``, an image's) for ``mask_suffix``: ``.png`` replaces the image's
    file ending (``a.jpg`` -> ``a.png``); any other suffix follows the image's stem (``_mask.png``: ``a_mask.png``)."""
    if _EXTENSION.fullmatch(mask_suffix):
        return rel.with_suffix(mask_suffix)
    return rel.with_name(rel.stem + mask_suffix)


def binary_mask_hint(counts: np.ndarray, class_names: Sequence[str], split: str) -> str | None:
    """The hint when a class has no pixel in ``split``'s label maps while 255 (ignore) covers some: 0/255 masks.

    Args:
        counts: pixels per label value (``np.bincount`` of the maps, at least 256 long).
        class_names: the dataset's classes. split: names the maps in the message, e.g. ``data.train``.
    Returns: the one-line warning, or None when every class has a pixel or no pixel is 255.
    """
    counts = np.asarray(counts)
    missing = [k for k in range(len(class_names)) if counts[k] == 0]
    if not missing or counts[IGNORE] == 0:
        return None
    names = ", ".join(f"'{class_names[k]}'" for k in missing[:4]) + (", ..." if len(missing) > 4 else "")
    share = counts[IGNORE] / max(int(counts.sum()), 1)
    return (
        f"class{'es' if len(missing) > 1 else ''} {names} {'have' if len(missing) > 1 else 'has'} no pixel in "
        f"{split}'s label maps but 255 (ignore) covers {share:.1%} of them: 0/255 binary masks? map 255 to the "
        f"class, e.g. label_map: {{255: {missing[0]}}} on data.train and data.val (docs/segmentation.md)"
    )


def read_label_map(path: str | os.PathLike) -> np.ndarray:
    """Read a label map: one class index per pixel (``L``, palette ``P`` or 16-bit ``I;16`` PNG). uint8/int32 [H,W].

    Palette PNGs (Pascal VOC style) give their palette *indices*, not colours. RGB maps are refused:
    they hold colours, not class indices.
    """
    path = os.fspath(path)
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode in ("RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV"):
                raise DatasetError(
                    f"label map {path} is a colour ({mode}) image; save one class index per pixel "
                    "as a single-channel (L), palette (P) or 16-bit PNG"
                )
            arr = np.asarray(im)
    except (OSError, SyntaxError) as e:
        raise ImageReadError(f"cannot read label map {path}: {e}") from e
    if arr.ndim == 3:  # e.g. LA
        arr = arr[..., 0]
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    return arr if arr.dtype == np.uint8 else arr.astype(np.int32)


@DATASETS.register
class SegFolderDataset(torch.utils.data.Dataset):
    """Images in ``img_dir`` and label maps ``mask_dir/<same relative path and stem><mask_suffix>``.

    A label-map pixel is a class index 0..C-1, or 255 (ignore). The classes are ``classes`` (a list, or a
    text file with one name per line; label value = position), with ``background`` (a name) inserted as
    class 0 when the class list names only the foreground classes and the maps use 0 for background.
    E.g. the shapes data: ``classes: data/shapes/sem/classes.txt`` (background, circle, ...), or
    ``classes: data/shapes/classes.txt`` with ``background: background``: both give 5 classes.

    Samples (docs/contracts.md): ``image`` uint8 [H,W,3] RGB, ``sem_seg`` uint8 [H,W] (int32 for 16-bit
    maps), empty ``boxes`` [0,4] / ``labels`` [0], ``image_id`` (the index), ``orig_size``, ``scale_factor``,
    ``pad_offset``; then the pipeline. ``None`` for an image that fails to decode when ``skip_bad_images``.

    Errors (:class:`DatasetError`) name the files: an image without its label map (at construction), an
    empty folder, a label map whose size differs from its image's, label values >= C other than 255, a
    label map that cannot be read or holds colours (when the sample is read). With ``on_error='skip'``
    an image without its label map is left out at construction (one warning counting them), and a sample
    whose image or label map is bad gives ``None`` (one warning per file); ``skipped`` counts both.

    Args:
        img_dir, mask_dir: the two folders (searched recursively). classes, background: see above.
        pipeline: transform specs or a callable.
        mask_suffix: ``.png`` (default: the image's file ending replaced, ``a.jpg`` <-> ``a.png``) or the text
            that follows the image's stem (``_mask.png``: ``a.jpg`` <-> ``a_mask.png``).
        img_suffixes: image file endings to list. skip_bad_images: see above.
        on_error: ``'raise'`` (default) or ``'skip'`` bad records, see above (docs/datasets.md).
        label_map: values in the files -> class index or 255, applied when a map is read, e.g. ``{255: 1}`` for
            0/255 binary masks (255 is otherwise ignored).
        reduce_zero_label: MMSegmentation's option: 0 becomes 255 (ignored) and every other value v becomes
            v - 1 (maps whose 0 is "unlabelled", e.g. ADE20K); ``label_map`` entries, keyed by the values in the
            files, take precedence over it.
    """

    def __init__(
        self,
        img_dir: str | os.PathLike,
        mask_dir: str | os.PathLike,
        classes: str | os.PathLike | Sequence[str],
        pipeline: Sequence[dict] | Callable | None = None,
        background: str | None = None,
        mask_suffix: str = ".png",
        img_suffixes: Sequence[str] = IMAGE_SUFFIXES,
        skip_bad_images: bool = True,
        on_error: str = "raise",
        label_map: Mapping[int, int] | None = None,
        reduce_zero_label: bool = False,
    ):
        self.on_error = check_on_error(on_error, "SegFolderDataset")
        self.skipped = SkippedRecords()
        self.img_dir, self.mask_dir = os.fspath(img_dir), os.fspath(mask_dir)
        self.sem_seg_dir = self.mask_dir
        self.class_names, self.skip_bad_images = _class_names(classes, background), skip_bad_images
        self.label_map = _check_label_map(label_map, self.num_classes)
        self.reduce_zero_label = bool(reduce_zero_label)
        self.mask_suffix, self.img_suffixes = check_mask_suffix(mask_suffix), tuple(s.lower() for s in img_suffixes)
        self.images, self.masks = self._pair_files(self.img_suffixes)
        self.aspect_ratios = np.array([self._aspect(p) for p in self.images], dtype=np.float32)  # h / w
        from detkit.data.transforms import as_pipeline  # lazy: transforms import this module's users

        self.pipeline = as_pipeline(pipeline)

    def _pair_files(self, suffixes: tuple[str, ...]) -> tuple[list[str], list[str]]:
        for d, what in ((self.img_dir, "img_dir"), (self.mask_dir, "mask_dir")):
            if not os.path.isdir(d):
                raise DatasetError(f"{what} {d} is not a folder; check data.*.{what} in the config")
        root = Path(self.img_dir)
        images = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        if not images:
            raise DatasetError(f"img_dir {self.img_dir} holds no image ({', '.join(suffixes)}); check data.*.img_dir")
        masks = [Path(self.mask_dir) / label_map_path(p.relative_to(root), self.mask_suffix) for p in images]
        missing = [(i, m) for i, m in zip(images, masks) if not m.is_file()]
        if missing:
            i, m = missing[0]
            msg = (
                f"{len(missing)} image(s) have no label map, e.g. image {i} has no {m}; add the label maps (same "
                f"relative path and stem, mask_suffix {self.mask_suffix}) or remove the images"
            )
            if len(missing) == len(images):
                raise DatasetError(
                    f"none of the {len(images)} images has a label map in mask_dir {self.mask_dir} "
                    f"(e.g. image {i} has no {m}); check data.*.mask_dir and mask_suffix"
                )
            if self.on_error == "raise":
                raise DatasetError(f"{msg}, or set on_error: skip to leave them out")
            self.skipped.add("image", "no_label_map", len(missing))
            warnings.warn(f"{msg}; on_error='skip' left them out", stacklevel=3)
            pairs = [(i, m) for i, m in zip(images, masks) if m.is_file()]
            images, masks = [i for i, _ in pairs], [m for _, m in pairs]
        return [os.fspath(p) for p in images], [os.fspath(m) for m in masks]

    @staticmethod
    def _aspect(path: str) -> float:
        try:
            with Image.open(path) as im:
                w, h = im.size
            return h / w
        except (OSError, SyntaxError, ZeroDivisionError):
            return 1.0  # unreadable: reported (or skipped) when the sample is read

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.images)

    def read_label_map(self, i: int, check: bool = True) -> np.ndarray:
        """The label map of sample ``i`` before the pipeline, its values remapped (``reduce_zero_label``,
        ``label_map``) and, with ``check``, checked: 0..C-1 or 255, else a DatasetError naming the file."""
        path = self.masks[i]
        sem = self._remap(read_label_map(path))
        if not check:
            return sem
        counts = np.bincount(sem.ravel().astype(np.int64).clip(min=0), minlength=IGNORE + 1)
        bad = [int(v) for v in np.flatnonzero(counts) if v >= self.num_classes and v != IGNORE]
        if bad or (sem.size and int(sem.min()) < 0):
            raise DatasetError(
                f"label map {path} has value(s) {bad[:10]} but there are {self.num_classes} classes "
                f"({', '.join(self.class_names[:6])}{', ...' if self.num_classes > 6 else ''}): "
                "values must be 0..C-1 or 255 (ignore); fix the map or the classes "
                "(background option? label_map?)"
            )
        return sem

    def _remap(self, sem: np.ndarray) -> np.ndarray:
        """``sem`` with ``reduce_zero_label`` (0 -> 255, v -> v - 1) and ``label_map`` (keyed by file values, first)."""
        if not (self.label_map or self.reduce_zero_label) or not sem.size:
            return sem
        lut = np.arange(max(IGNORE + 1, int(sem.max()) + 1), dtype=np.int64)
        if self.reduce_zero_label:
            lut[0], lut[1:IGNORE] = IGNORE, np.arange(IGNORE - 1)
        for old, new in self.label_map.items():
            if old < len(lut):
                lut[old] = new
        return lut[sem.clip(min=0)].astype(sem.dtype)

    def _read(self, i: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Image and checked label map of sample ``i``; None when one is bad and skipping applies (noted)."""
        try:
            image = read_image(self.images[i])
        except ImageReadError as e:
            if not (self.skip_bad_images or self.on_error == "skip"):
                raise
            why = "skip_bad_images=True" if self.skip_bad_images else "on_error='skip'"
            self.skipped.note("image", "unreadable_image", self.images[i], f"{e}; skipping it ({why})")
            return None
        try:
            sem = self.read_label_map(i)
            if sem.shape != image.shape[:2]:
                raise DatasetError(
                    f"label map {self.masks[i]} is {sem.shape[1]}x{sem.shape[0]} but image "
                    f"{self.images[i]} is {image.shape[1]}x{image.shape[0]}; they must match"
                )
        except (DatasetError, ImageReadError) as e:
            if self.on_error == "raise":
                raise
            self.skipped.note("image", "bad_label_map", self.masks[i], f"{e}; skipping it (on_error='skip')")
            return None
        return image, sem

    def __getitem__(self, i: int) -> dict | None:
        """Sample ``i`` after the pipeline, or ``None`` when its image or label map is bad and that is skipped."""
        pair = self._read(i)
        if pair is None:
            return None
        image, sem = pair
        h, w = image.shape[:2]
        sample = {
            "image": image,
            "sem_seg": sem,
            "boxes": np.zeros((0, 4), np.float32),
            "labels": np.zeros(0, np.int64),
            "image_id": i,
            "orig_size": (h, w),
            "scale_factor": (1.0, 1.0),
            "pad_offset": (0, 0),
        }
        return self.pipeline(sample) if self.pipeline is not None else sample


def _class_names(classes: str | os.PathLike | Sequence[str], background: str | None) -> list[str]:
    """The class list: ``classes`` with ``background`` inserted as class 0; at most 255 (labels 0..254)."""
    names = load_class_names(classes)
    if background is not None:
        if names[0] == background:
            raise DatasetError(
                f"classes already start with {background!r}; drop the background option "
                f"(it inserts {background!r} as class 0)"
            )
        names = [str(background), *names]
    if len(names) > IGNORE:
        raise DatasetError(
            f"{len(names)} classes: label values are 0..254 (255 is the ignore value), so at most 255 classes fit; "
            "merge or drop classes"
        )
    return names


def _check_label_map(label_map: Mapping[int, int] | None, num_classes: int) -> dict[int, int]:
    """``label_map`` (value in the files -> class index or 255) as a dict of ints, or a DatasetError naming the entry."""
    if label_map is None:
        return {}
    if not isinstance(label_map, Mapping):
        raise DatasetError(f"label_map {label_map!r} is no mapping; give value-in-the-files: class, e.g. {{255: 1}}")
    out = {}
    for old, new in label_map.items():
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (old, new))
        if not ok or old < 0 or not (0 <= new < num_classes or new == IGNORE):
            raise DatasetError(
                f"label_map entry {old!r}: {new!r} is not value: class; keys are values in the label maps (>= 0), "
                f"values a class index 0..{num_classes - 1} or 255 (ignore), e.g. label_map: {{255: 1}}"
            )
        out[old] = new
    return out
