"""A folder of images + a folder of PNG label maps with the same file stems, as a semantic dataset."""

from __future__ import annotations

import os
import unicodedata
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch.utils.data
from PIL import Image

from detkit.data.image_io import IMAGE_SUFFIXES, ImageReadError, read_image
from detkit.data.validate import DatasetError, SkippedRecords, check_on_error
from detkit.registry import DATASETS

__all__ = ["SegFolderDataset", "load_class_names", "nfc", "read_label_map"]

IGNORE = 255


def load_class_names(classes: str | os.PathLike | Sequence[str]) -> list[str]:
    """``classes`` as a list of names: a list as is, or a text file with one name per line (blank lines skipped).

    Names are Unicode NFC-normalised, so that a name typed on one system matches the same name written
    (decomposed, NFD) by another, e.g. macOS' folder names."""
    if isinstance(classes, (str, os.PathLike)):
        path = os.fspath(classes)
        if not os.path.isfile(path):
            raise DatasetError(_missing_classes(path))
        with open(path, encoding="utf-8") as f:
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
        pipeline: transform specs or a callable. mask_suffix: of the label maps (``.png``).
        img_suffixes: image file endings to list. skip_bad_images: see above.
        on_error: ``'raise'`` (default) or ``'skip'`` bad records, see above (docs/datasets.md).
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
    ):
        self.on_error = check_on_error(on_error, "SegFolderDataset")
        self.skipped = SkippedRecords()
        self.img_dir, self.mask_dir = os.fspath(img_dir), os.fspath(mask_dir)
        self.sem_seg_dir = self.mask_dir
        names = load_class_names(classes)
        if background is not None:
            if names[0] == background:
                raise DatasetError(
                    f"classes already start with {background!r}; drop the background option "
                    f"(it inserts {background!r} as class 0)"
                )
            names = [str(background), *names]
        if len(names) >= IGNORE:
            raise DatasetError(f"{len(names)} classes: 255 is the ignore value, so at most 255 classes fit")
        self.class_names, self.skip_bad_images = names, skip_bad_images
        self.mask_suffix, self.img_suffixes = mask_suffix, tuple(s.lower() for s in img_suffixes)
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
        masks = [Path(self.mask_dir) / p.relative_to(root).with_suffix(self.mask_suffix) for p in images]
        missing = [(i, m) for i, m in zip(images, masks) if not m.is_file()]
        if missing:
            i, m = missing[0]
            msg = (
                f"{len(missing)} image(s) have no label map, e.g. image {i} has no {m}; add the label maps (same "
                f"relative path and stem, suffix {self.mask_suffix}) or remove the images"
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

    def read_label_map(self, i: int) -> np.ndarray:
        """The checked label map of sample ``i`` (values 0..C-1 or 255), before the pipeline."""
        path = self.masks[i]
        sem = read_label_map(path)
        counts = np.bincount(sem.ravel().astype(np.int64).clip(min=0), minlength=IGNORE + 1)
        bad = [int(v) for v in np.flatnonzero(counts) if v >= self.num_classes and v != IGNORE]
        if bad or (sem.size and int(sem.min()) < 0):
            raise DatasetError(
                f"label map {path} has value(s) {bad[:10]} but there are {self.num_classes} classes "
                f"({', '.join(self.class_names[:6])}{', ...' if self.num_classes > 6 else ''}): "
                "values must be 0..C-1 or 255 (ignore); fix the map or the classes "
                "(background option?)"
            )
        return sem

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
