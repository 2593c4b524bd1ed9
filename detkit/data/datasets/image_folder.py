"""Classification images: one sub-folder per class (``img_dir/<class>/*.png``) or a CSV of ``file,label`` rows."""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch.utils.data

from detkit.data.datasets.seg_folder import IMAGE_SUFFIXES, load_class_names, nfc
from detkit.data.folder_layout import hidden, layout_mistake
from detkit.data.image_cache import CacheMode, ImageCache
from detkit.data.image_io import ImageReadError, UnsafePathError, safe_join
from detkit.data.validate import DatasetError, SkippedRecords, check_on_error, where_read
from detkit.registry import DATASETS

__all__ = ["ImageFolderDataset", "class_sample", "resolve_classes"]


def resolve_classes(classes: str | os.PathLike | Sequence[str] | None) -> list[str] | None:
    """``classes`` as a list of names: a list as is, a text file (one name per line), or a folder (the names of
    its sub-folders, sorted: e.g. the training split's ``img_dir``, so that data.val takes data.train's classes)."""
    if isinstance(classes, (str, os.PathLike)) and os.path.isdir(classes):
        mistake = layout_mistake(classes, "classes")
        if mistake:
            raise DatasetError(f"classes folder {mistake}")
        names = sorted(class_folders(classes))
        if not names:
            raise DatasetError(f"classes folder {os.fspath(classes)} has no sub-folders to take class names from")
        return names
    return None if classes is None else load_class_names(classes, by_line_index=False)  # matched by name


def class_folders(folder: str | os.PathLike) -> dict[str, str]:
    """The class folders of ``folder``: NFC name (see :func:`nfc`) -> the name on disk (macOS writes NFD).
    Hidden folders and ``__MACOSX`` are no classes."""
    return {nfc(d.name): d.name for d in os.scandir(folder) if d.is_dir() and not hidden(d.name)}


def _visible_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The image files below ``folder``, sorted, leaving out hidden ones (``._x.jpg``) and hidden sub-folders."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in suffixes
        and not any(hidden(part) for part in p.relative_to(folder).parts)
        and p.is_file()
    )


def class_sample(image: np.ndarray, label: int, image_id: int) -> dict:
    """The sample dict of a classification image (docs/contracts.md): ``image``, ``labels`` int64 [1], ...

    There is no ``boxes`` key: albumentations' box processor would drop the class label along with the
    empty boxes (collate gives every target empty ``boxes`` [0,4] anyway).
    """
    h, w = image.shape[:2]
    return {
        "image": image,
        "labels": np.array([label], dtype=np.int64),
        "image_id": image_id,
        "orig_size": (h, w),
        "scale_factor": (1.0, 1.0),
        "pad_offset": (0, 0),
    }


class ClassLabels:
    """What a classification dataset has beside its samples: ``class_names`` and one label per sample.

    Sets ``class_names`` (C names) and ``labels`` (int64 [N]); gives ``num_classes``, ``class_counts`` (samples
    per class, in label order: the class balance) and the length.
    """

    class_names: list[str]
    labels: np.ndarray

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def class_counts(self) -> list[int]:
        return np.bincount(self.labels, minlength=self.num_classes).tolist()

    def __len__(self) -> int:
        return len(self.labels)


class HoldOut:
    """A per-class split of a dataset's items into a training part and a held-out (validation) part."""

    SUBSETS = ("train", "val")
    KEYS = ("val_fraction", "subset", "split_seed")  # the dataset's arguments of a split

    def __init__(self, fraction: float, subset: str, seed: int):
        self.fraction, self.subset, self.seed = fraction, subset, seed

    @classmethod
    def of(cls, fraction: float | None, subset: str, seed: int) -> HoldOut | None:
        """The split of the dataset's arguments (None without ``val_fraction``); bad values are ``ValueError``."""
        if subset not in cls.SUBSETS:
            raise ValueError(f"ImageFolderDataset subset={subset!r}: give 'train' or 'val' (the held-out part)")
        if fraction is None:
            if subset != "train":
                raise ValueError("ImageFolderDataset subset='val' needs val_fraction (the share held out, e.g. 0.2)")
            return None
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise ValueError(f"ImageFolderDataset val_fraction={fraction!r}: give a share between 0 and 1, e.g. 0.2")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"ImageFolderDataset split_seed={seed!r}: give an integer")
        return cls(float(fraction), subset, seed)

    def held(self, count: int) -> int:
        """How many of a class's ``count`` images are held out: the fraction rounded, one at least (of two or more)."""
        return 0 if count < 2 else min(count - 1, max(1, int(count * self.fraction + 0.5)))  # half up, not to even

    def take(self, items: list[tuple[str, int]], class_names: Sequence[str]) -> list[tuple[str, int]]:
        """The items of this subset, in their listing order. A class's draw depends on its name, the seed and
        its sorted files only (not on the other classes, nor on the order of listing)."""
        import zlib

        by_label: dict[int, list[str]] = {}
        for f, lab in items:  # one pass (ImageNet: 1.3 M items, 1000 classes)
            by_label.setdefault(lab, []).append(f)
        held: set[str] = set()
        for label, name in enumerate(class_names):
            files = sorted(set(by_label.get(label, [])))  # (a file listed twice in a CSV counts once)
            rng = np.random.default_rng([self.seed, zlib.crc32(name.encode("utf-8"))])
            held.update(files[i] for i in rng.permutation(len(files))[: self.held(len(files))])
        return [(f, lab) for f, lab in items if (f in held) == (self.subset == "val")]

    def kwargs(self) -> dict:
        """The dataset arguments that make this split: ``val_fraction``, ``subset``, ``split_seed``."""
        return dict(zip(self.KEYS, (self.fraction, self.subset, self.seed)))

    def describe(self, kept: int, source: str) -> str:
        part = "held out for validation" if self.subset == "val" else "kept for training"
        return f"{source}: {kept} images {part} (val_fraction {self.fraction:g} of each class, split_seed {self.seed})"


def _natural_order(names: set[str]) -> list[str]:
    """Label names sorted: numerically when every one is an integer ("2" before "10"), else by name."""
    if all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


@DATASETS.register
class ImageFolderDataset(ClassLabels, torch.utils.data.Dataset):
    """Images and their class, from ``img_dir/<class>/...`` (searched recursively) or a CSV ``ann_file``.

    Classes (label = position): ``classes`` when given (a list, a text file with one name per line, or a
    folder whose sub-folder names are taken, e.g. the training ``img_dir``), else the class folders' names
    (or the CSV's labels) sorted. Give data.val ``classes: <data.train.img_dir>`` so that both agree and
    a class that the validation data lacks is no problem.

    Input checks (at construction, :class:`DatasetError` naming the file and the fix): ``img_dir`` without
    class folders, ``img_dir`` (or a ``classes`` folder) that is a split root ``<split>/<class>/<image>`` or a
    YOLO detection dataset (:func:`layout_mistake`), an empty class folder, a class folder (or CSV label)
    outside ``classes``, an empty (0-byte) image file, a CSV row whose file is missing or leaves ``img_dir``, a CSV without ``file`` and
    ``label`` columns. ``on_error='skip'`` leaves such images out instead, with one warning counting them
    (``skipped``); an empty class folder then keeps its class, with no images. An image that fails to decode
    when read raises :class:`ImageReadError` naming the file, or gives ``None`` when ``skip_bad_images``
    (the default) or ``on_error='skip'``.

    Images are read as :class:`CocoDataset` reads them (``detkit.data.image_io.read_image``: EXIF orientation,
    grey to RGB, 16-bit to 8-bit). Samples: see :func:`class_sample`; ``image_id`` is the index.

    One folder (or CSV) can give both splits: ``val_fraction`` holds out that share of each class's images
    (at least one of a class with two or more, none of a class with one), drawn by ``split_seed`` from the
    class's sorted files; ``subset`` ``train`` keeps the rest, ``val`` the held-out ones (Keras'
    ``validation_split`` / ``subset``). Two datasets with the same folder, fraction and seed split it the same
    way on every machine; ``held_out`` then says which part this one is (None without ``val_fraction``).

    Args:
        img_dir: the image folder. ann_file: CSV with a header row naming ``file`` (relative to ``img_dir``)
            and ``label`` (class name) columns; None: class sub-folders. classes: see above.
        val_fraction: share of each class held out (0 < f < 1), or None: every image. subset: ``train`` or
            ``val``, the part to keep. split_seed: the draw of the held-out images.
        pipeline: transform specs or a callable. img_suffixes: image file endings listed in class folders.
        on_error, skip_bad_images: see above.
        cache, cache_dir: keep the decoded images in RAM or on disk, as for ``CocoDataset``.

    Attributes: ``class_names``, ``files`` (paths), ``labels`` int64 [N], ``class_counts`` (images per class),
    ``aspect_ratios`` (ones: classification pipelines crop to one size, batches need no grouping),
    ``categories_fix`` (how to give a split the training classes, for messages such as the trainer's
    pre-flight check that data.train and data.val agree).
    """

    categories_fix = (
        "give data.val the training classes: classes: <data.train.img_dir> (its class folders) or a classes.txt"
    )

    def __init__(
        self,
        img_dir: str | os.PathLike,
        ann_file: str | os.PathLike | None = None,
        classes: str | os.PathLike | Sequence[str] | None = None,
        pipeline: Sequence[dict] | Callable | None = None,
        img_suffixes: Sequence[str] = IMAGE_SUFFIXES,
        on_error: str = "raise",
        skip_bad_images: bool = True,
        cache: CacheMode = False,
        cache_dir: str | None = None,
        val_fraction: float | None = None,
        subset: str = "train",
        split_seed: int = 0,
    ):
        self.on_error = check_on_error(on_error, "ImageFolderDataset")
        holdout = HoldOut.of(val_fraction, subset, split_seed)
        self.skipped = SkippedRecords()
        self.img_dir = os.fspath(img_dir)
        self.ann_file = None if ann_file is None else os.fspath(ann_file)
        self.skip_bad_images = skip_bad_images
        if not os.path.isdir(self.img_dir):
            state = "is a file, not a folder" if os.path.exists(self.img_dir) else "not found"
            where = where_read(self.img_dir) if state == "not found" else ""
            raise DatasetError(f"image folder {self.img_dir} {state}{where}; check img_dir")
        mistake = None if self.ann_file is not None else layout_mistake(self.img_dir)
        if mistake:  # a split root (ROOT/train/<class>/...) or a YOLO detection dataset
            raise DatasetError(mistake)
        given = resolve_classes(classes)
        self.problems: list[tuple[str, str]] = []  # (kind, message) found while listing
        if self.ann_file is None:
            self.class_names, items = self._from_folders(given, tuple(s.lower() for s in img_suffixes))
        else:
            self.class_names, items = self._from_csv(given)
        self._report(self.problems)
        self.held_out, self.holdout = None, holdout  # (what this part is, in words; the split's settings)
        if holdout is not None:
            items = holdout.take(items, self.class_names)
            self.held_out = holdout.describe(len(items), self.ann_file or self.img_dir)
        self.files = [f for f, _ in items]
        self.labels = np.array([lab for _, lab in items], dtype=np.int64)
        if not self.files:
            warnings.warn(f"{self.ann_file or self.img_dir}: the dataset has no images", stacklevel=2)
        self.aspect_ratios = np.ones(len(self.files), dtype=np.float32)
        from detkit.data.transforms import as_pipeline  # lazy: transforms import this module's users

        self.pipeline = as_pipeline(pipeline)
        self.image_cache = ImageCache(cache, cache_dir, owner=self.ann_file or self.img_dir)
        self.image_cache.fill(self.files)

    def _problem(self, kind: str, message: str) -> None:
        self.problems.append((kind, message))

    def _check_file(self, path: Path, where: str) -> bool:
        """True when ``path`` is a non-empty file; else a problem naming it (``where``: the record)."""
        if not path.is_file():
            self._problem("missing_image", f"{where}: image {path} not found")
        elif path.stat().st_size == 0:
            self._problem("empty_image", f"{where}: image file {path} is empty (0 bytes)")
        else:
            return True
        return False

    def _from_folders(self, given: list[str] | None, suffixes: tuple[str, ...]) -> tuple[list[str], list]:
        """Classes and ``(path, label)`` items of ``img_dir/<class>/**``."""
        on_disk = class_folders(self.img_dir)
        folders = sorted(on_disk)
        if not folders:
            raise DatasetError(
                f"image folder {self.img_dir} has no class sub-folders; lay it out as "
                f"{self.img_dir}/<class>/<image>, or give ann_file (a CSV of file,label rows)"
            )
        names = given or folders
        source = "the classes given" if given else "the class folders"
        for extra in (f for f in folders if f not in names):
            self._problem(
                "unknown_class",
                f"{os.path.join(self.img_dir, on_disk[extra])}: class folder '{extra}' is not "
                f"among {source} ({', '.join(names[:8])}); the model cannot learn it: "
                "remove the folder, or add the class to the training data and classes",
            )
        items = []
        for label, name in enumerate(names):
            folder = Path(self.img_dir) / on_disk.get(name, name)
            if not folder.is_dir():
                continue  # a class this split lacks (e.g. a small validation set)
            paths = _visible_files(folder, suffixes)
            if not paths:
                self._problem(
                    "empty_class_folder",
                    f"{folder}: class folder '{name}' holds no image "
                    f"({', '.join(suffixes)}); add images or remove the folder",
                )
            items += [(os.fspath(p), label) for p in paths if self._check_file(p, f"class '{name}'")]
        stray = [f for f in os.listdir(self.img_dir) if Path(f).suffix.lower() in suffixes and not hidden(f)]
        if stray:
            warnings.warn(
                f"{self.img_dir}: {len(stray)} image(s) lie outside the class folders (e.g. {stray[0]}) "
                "and are left out; move them into img_dir/<class>/",
                stacklevel=3,
            )
        return names, items

    def _csv_rows(self) -> list[tuple[int, str, str]]:
        """``(line number, file, label)`` of every row of ``ann_file`` after its header."""
        if not os.path.isfile(self.ann_file):
            raise DatasetError(f"ann_file {self.ann_file} not found; give a CSV with file,label columns")
        with open(self.ann_file, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
        header = [h.strip().lower() for h in (rows[0] if rows else [])]
        if "file" not in header or "label" not in header:
            raise DatasetError(self._header_problem(rows))
        fi, li = header.index("file"), header.index("label")
        out = []
        for n, row in enumerate(rows[1:], start=2):
            if not any(c.strip() for c in row):
                continue
            if len(row) <= max(fi, li) or not row[fi].strip() or not row[li].strip():
                raise DatasetError(f"{self.ann_file} line {n}: {row} lacks a file or a label; write 'file,label'")
            out.append((n, row[fi].strip(), nfc(row[li].strip())))
        return out

    def _header_problem(self, rows: list[list[str]]) -> str:
        """Why the CSV's first row names no 'file' and 'label' columns: another delimiter, no header row, or not."""
        got = rows[0] if rows else "an empty file"
        need = f"{self.ann_file}: the first row must name the columns 'file' and 'label' (e.g. 'file,label')"
        first = ",".join(rows[0]) if rows else ""
        other = next((d for d in (";", "\t") if d in first and len(rows[0]) == 1), None)
        if other:
            shown = "tab" if other == "\t" else f"'{other}'"
            return f"{need}; its rows are separated by {shown}, not commas: write them as file,label (got {got})"
        cells = [c.strip() for c in rows[0]] if rows else []
        if len(cells) >= 2 and any(c and os.path.isfile(os.path.join(self.img_dir, c)) for c in cells):
            return (
                f"{need}; its first row is data (an image file and its label, {got}), not a header: "
                "add the line 'file,label' at the top"
            )
        return f"{need}, got {got}"

    def _from_csv(self, given: list[str] | None) -> tuple[list[str], list]:
        """Classes and ``(path, label)`` items of the rows of ``ann_file``."""
        rows = self._csv_rows()
        names = given or _natural_order({lab for _, _, lab in rows})
        index = {n: i for i, n in enumerate(names)}
        items = []
        for n, file, label in rows:
            where = f"{self.ann_file} line {n}"
            if label not in index:
                self._problem(
                    "unknown_class",
                    f"{where}: label '{label}' is not among the classes given "
                    f"({', '.join(names[:8])}); fix the label or the classes",
                )
                continue
            try:
                path = Path(safe_join(self.img_dir, file))
            except UnsafePathError as e:
                raise DatasetError(f"{where}: {e}") from None
            if self._check_file(path, where):
                items.append((os.fspath(path), index[label]))
        return names, items

    def _report(self, problems: list[tuple[str, str]]) -> None:
        """Raise on the listing's problems (``on_error='raise'``), or count them with one warning."""
        if not problems:
            return
        source = self.ann_file or self.img_dir
        shown = "\n".join(f"  {m}" for _, m in problems[:5]) + ("\n  ..." if len(problems) > 5 else "")
        if self.on_error == "raise":
            raise DatasetError(
                f"{len(problems)} problem(s) in {source}:\n{shown}\nFix them, or set on_error: skip "
                "in this dataset's config to leave those images (and folders) out"
            )
        for kind, _ in problems:
            self.skipped.add("image", kind)
        warnings.warn(f"{source}: on_error='skip' left out {len(problems)} item(s):\n{shown}", stacklevel=3)

    def __getitem__(self, i: int) -> dict | None:
        """Sample ``i`` after the pipeline, or ``None`` when its image fails to decode and that is skipped."""
        try:
            image = self.image_cache.read(self.files[i])
        except ImageReadError as e:
            return self._unreadable(self.files[i], e)
        sample = class_sample(image, int(self.labels[i]), i)
        return self.pipeline(sample) if self.pipeline is not None else sample

    def _unreadable(self, path: str, error: ImageReadError) -> None:
        """Raise ``error`` unless ``skip_bad_images`` or ``on_error='skip'``; else note the file (one warning)."""
        if self.skip_bad_images or self.on_error == "skip":
            why = "skip_bad_images=True" if self.skip_bad_images else "on_error='skip'"
            return self.skipped.note("image", "unreadable_image", path, f"{error}; skipping it ({why})")
        raise error
