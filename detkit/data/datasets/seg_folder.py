"""A folder of images + a folder of PNG label maps with the same file stems, as a semantic dataset."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch.utils.data
from PIL import Image

from detkit.data.datasets.seg_files import (
    IGNORE,
    binary_mask_hint,
    check_mask_suffix,
    exif_turn,
    label_map_path,
    load_class_names,
    nfc,
    read_label_map,
    read_split_file,
    size_mismatch,
)
from detkit.data.image_io import IMAGE_SUFFIXES, ImageReadError, read_image
from detkit.data.validate import DatasetError, SkippedRecords, check_on_error
from detkit.registry import DATASETS

__all__ = [
    "SegFolderDataset",
    "binary_mask_hint",
    "check_label_map",
    "check_mask_suffix",
    "exif_turn",
    "label_map_path",
    "load_class_names",
    "nfc",
    "read_label_map",
    "read_split_file",
    "remap_labels",
    "seg_class_names",
    "size_mismatch",
]


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
        split_file: a text file of image stems (relative to ``img_dir``, one per line; Pascal VOC's
            ``ImageSets/Segmentation/train.txt``): only those images, in its order. A stem without an image is
            an error naming the file, line and stem (``on_error='skip'``: left out with a warning).
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
        split_file: str | os.PathLike | None = None,
    ):
        self.on_error = check_on_error(on_error, "SegFolderDataset")
        self.skipped = SkippedRecords()
        self.img_dir, self.mask_dir = os.fspath(img_dir), os.fspath(mask_dir)
        self.sem_seg_dir = self.mask_dir
        self.class_names, self.skip_bad_images = seg_class_names(classes, background), skip_bad_images
        self.classes_file = os.fspath(classes) if isinstance(classes, (str, os.PathLike)) else None
        self.background = background
        self.label_map = check_label_map(label_map, self.num_classes)
        self.reduce_zero_label = bool(reduce_zero_label)
        self.mask_suffix, self.img_suffixes = check_mask_suffix(mask_suffix), tuple(s.lower() for s in img_suffixes)
        self.split_file = os.fspath(split_file) if split_file is not None else None
        self.split_missing: list[tuple[int, str]] = []  # (line, stem) of split_file without an image ('skip')
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
        if self.split_file is not None:
            images = self._split_images(root, images)
        self.listed_images = [os.fspath(p) for p in images]  # the split's images, before pairing
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

    def _split_images(self, root: Path, images: list[Path]) -> list[Path]:
        """The images ``split_file`` lists, in its order; a stem without an image raises, or under 'skip' is
        left out with a warning (kept in ``split_missing``)."""
        found: dict[str, Path] = {}
        for p in images:
            rel = p.relative_to(root)
            found.setdefault(rel.with_suffix("").as_posix(), p)
            found[rel.as_posix()] = p  # a stem may carry the image's ending
        lines = read_split_file(self.split_file)
        self.split_missing = [(n, stem) for n, stem in lines if stem not in found]
        if self.split_missing:
            (n, stem), more = self.split_missing[0], len(self.split_missing) - 1
            msg = (
                f"split_file {self.split_file} line {n}: stem {stem!r} has no image in img_dir {self.img_dir} "
                f"(looked for {stem} + {', '.join(self.img_suffixes)})"
                + (f"; {more} more listed stem(s) have none" if more else "")
                + "; fix the list or data.*.img_dir"
            )
            if self.on_error == "raise" or len(self.split_missing) == len(lines):
                skip = len(self.split_missing) < len(lines)  # some found: skipping the others can help
                raise DatasetError(msg + (", or set on_error: skip to leave them out" if skip else ""))
            self.skipped.add("image", "missing_image", len(self.split_missing))
            warnings.warn(f"{msg}; on_error='skip' left them out", stacklevel=4)
        return [found[stem] for _, stem in lines if stem in found]

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
        _, bad = label_value_counts(sem, self.num_classes)
        if bad or (sem.size and int(sem.min()) < 0):
            raise DatasetError(
                f"label map {path} has value(s) {bad[:10]} but there are {self.num_classes} classes "
                f"({', '.join(self.class_names[:6])}{', ...' if self.num_classes > 6 else ''}): "
                "values must be 0..C-1 or 255 (ignore); fix the map or the classes "
                "(background option? label_map?)"
            )
        return sem

    def _remap(self, sem: np.ndarray) -> np.ndarray:
        return remap_labels(sem, self.label_map, self.reduce_zero_label)

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
                raise DatasetError(size_mismatch(self.masks[i], self.images[i], sem.shape, image.shape[:2]))
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


def seg_class_names(classes: str | os.PathLike | Sequence[str], background: str | None) -> list[str]:
    """The class list: ``classes`` with ``background`` inserted as class 0; at most 255 (labels 0..254)."""
    names = load_class_names(classes)
    if background is not None:
        if names[0] == background:
            raise DatasetError(
                f"classes already start with {background!r}; drop the background option "
                f"(it inserts {background!r} as class 0)"
            )
        if background in names:
            raise DatasetError(
                f"the background option inserts {background!r} as class 0, but the classes name it as class "
                f"{names.index(background)} too; drop the background option, or that name from the classes"
            )
        names = [str(background), *names]
    if len(names) > IGNORE:
        raise DatasetError(
            f"{len(names)} classes: label values are 0..254 (255 is the ignore value), so at most 255 classes fit; "
            "merge or drop classes"
        )
    return names


def check_label_map(label_map: Mapping[int, int] | None, num_classes: int) -> dict[int, int]:
    """``label_map`` (value in the files -> class index or 255) as a dict of ints, or a DatasetError naming the entry."""
    if label_map is None:
        return {}
    meaning = (
        f"each entry is <value in the label-map files>: <the class it is read as, 0..{num_classes - 1}, or 255 to "
        "ignore it>, e.g. label_map: {255: 1} reads 0/255 masks as classes 0 and 1 (give data.train and data.val "
        "the same)"
    )
    if not isinstance(label_map, Mapping):
        raise DatasetError(f"label_map (data.*.label_map) {label_map!r} is no mapping: {meaning}")
    out = {}
    for old, new in label_map.items():
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (old, new))
        if not ok or old < 0 or not (0 <= new < num_classes or new == IGNORE):
            why = (
                f"names class {new}, but there are {num_classes} classes"
                if ok and old >= 0
                else "is no pair of whole numbers (the key >= 0)"
            )
            raise DatasetError(f"label_map (data.*.label_map) entry {old!r}: {new!r} {why}; {meaning}")
        out[old] = new
    return out


def remap_labels(sem: np.ndarray, label_map: Mapping[int, int], reduce_zero_label: bool) -> np.ndarray:
    """``sem`` [H,W] with ``reduce_zero_label`` (0 -> 255, v -> v - 1) and ``label_map`` (keyed by file values, first),
    as SegFolderDataset reads its maps."""
    if not (label_map or reduce_zero_label) or not sem.size:
        return sem
    lut = np.arange(max(IGNORE + 1, int(sem.max()) + 1), dtype=np.int64)
    if reduce_zero_label:
        lut[0], lut[1:IGNORE] = IGNORE, np.arange(IGNORE - 1)
    for old, new in label_map.items():
        if old < len(lut):
            lut[old] = new
    return lut[sem.clip(min=0)].astype(sem.dtype)


def label_value_counts(sem: np.ndarray, num_classes: int) -> tuple[np.ndarray, list[int]]:
    """Pixels per value of label map ``sem`` (at least 256 bins; negatives counted as 0) and its values that are
    no class (``>= num_classes``) and not the ignore value 255."""
    counts = np.bincount(sem.ravel().astype(np.int64).clip(min=0), minlength=IGNORE + 1)
    return counts, [int(v) for v in np.flatnonzero(counts) if v >= num_classes and v != IGNORE]
