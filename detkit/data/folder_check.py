"""``check_image_folder``: every check of a classification dataset (class folders or a CSV) with a summary.

It lists the data as ``ImageFolderDataset`` does (the same problems: no class folders, an empty class folder,
a class outside the classes given, an empty or missing file, CSV mistakes), then decodes every image as
training reads it, counts the images per class and reports the class imbalance. What it reports as an error
is what ``ImageFolderDataset`` refuses (or ``on_error: skip`` / ``skip_bad_images`` leaves out); a warning
trains but deserves a look (a rare class, images left outside the class folders). ``check_split_root`` checks
each split of a root laid out as ``ROOT/train/<class>/...``, ``ROOT/val/<class>/...`` (Ultralytics').
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from detkit.data.image_io import ImageReadError, read_image
from detkit.data.validate import WARNING, DatasetError, Problem, ProblemReport, format_problems

__all__ = [
    "IMBALANCE_WARN",
    "MIN_IMAGES_WARN",
    "FolderReport",
    "check_image_folder",
    "check_split_root",
    "imbalance",
    "imbalance_line",
]

IMBALANCE_WARN = 3.0  # a class with under 1/3 of the largest class's images is reported
MIN_IMAGES_WARN = 10  # a class with fewer images than this is reported


@dataclass
class FolderReport(ProblemReport):
    """What :func:`check_image_folder` found: the problems, the images per class, image sizes, what was checked."""

    source: str
    problems: list[Problem] = field(default_factory=list)
    class_counts: dict[str, int] = field(default_factory=dict)
    sizes: Counter = field(default_factory=Counter)  # (h, w, channels of the file) -> images
    checked: list[str] = field(default_factory=list)

    def format(self) -> str:
        """Every problem, the per-class table with shares and the imbalance, image sizes, what was checked."""
        counts = self.class_counts
        total = sum(counts.values())
        width = max([len("class")] + [len(n) for n in counts])
        lines = [format_problems(self.problems)] if self.problems else []
        lines += [f"Summary of {self.source}: {total} images, {len(counts)} classes", "  images per class:"]
        lines += [f"    {n:<{width}}  {c:>6}  {c / max(total, 1):6.1%}" for n, c in counts.items()]
        lines.append(imbalance_line(counts, "images"))
        if self.sizes:
            shown = ", ".join(f"{h}x{w}x{c}: {n}" for (h, w, c), n in self.sizes.most_common(5))
            more = f" (+{len(self.sizes) - 5} other sizes)" if len(self.sizes) > 5 else ""
            lines.append(f"  image sizes (h x w x channels in the file): {shown}{more}")
        lines += ["Checked:", *(f"  {c}" for c in self.checked)]
        lines.append(f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)")
        return "\n".join(lines)


def imbalance(counts: dict[str, int]) -> tuple[float | None, list[str]]:
    """(largest / smallest count among the classes with images, the classes under 1/``IMBALANCE_WARN`` of the
    largest); None when no class has images."""
    held = {n: c for n, c in counts.items() if c > 0}
    if not held:
        return None, []
    top = max(held.values())
    return top / min(held.values()), [n for n, c in held.items() if c * IMBALANCE_WARN < top]


def imbalance_line(counts: dict[str, int], unit: str) -> str:
    """The report line of the class imbalance: largest / smallest count, the rare and the empty classes
    (``unit``: what is counted, ``images`` or ``annotations``)."""
    ratio, rare = imbalance(counts)
    if ratio is None:
        return f"  imbalance: undefined (no {unit})"
    line = f"  imbalance (largest / smallest class): {ratio:.1f}x"
    line += f"; under 1/{IMBALANCE_WARN:g} of the largest: {', '.join(rare)}" if rare else ""
    empty = [n for n, c in counts.items() if c == 0]
    return line + (f"; without {unit}: {', '.join(empty)}" if empty else "")


def _decode_all(files: Sequence[str], progress: bool, problems: list[Problem]) -> Counter:
    """Decode every image as training reads it; unreadable ones become errors. Returns the size counts."""
    import cv2
    from tqdm import tqdm

    sizes: Counter = Counter()
    for path in tqdm(files, desc="decoding", unit="img", disable=None if progress else True):
        try:
            image = read_image(path)
        except ImageReadError as e:
            problems.append(Problem("unreadable_image", f"{path}: {e}", record="image"))
            continue
        raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        channels = 1 if raw is None or raw.ndim == 2 else raw.shape[2]
        sizes[(image.shape[0], image.shape[1], channels)] += 1
    return sizes


def _balance_problems(counts: dict[str, int]) -> list[Problem]:
    """Warnings for rare classes: few images, or under 1/``IMBALANCE_WARN`` of the largest class's."""
    _, rare = imbalance(counts)
    top = max(counts.values(), default=0)
    out = []
    for name, n in counts.items():
        if name in rare:
            why = f"{n} images, under 1/{IMBALANCE_WARN:g} of the largest class's {top}: the model sees it rarely"
        elif 0 < n < MIN_IMAGES_WARN:
            why = f"only {n} images (under {MIN_IMAGES_WARN}): too few to learn it, or to measure its accuracy"
        else:
            continue
        out.append(Problem("rare_class", f"class '{name}' has {why}; add images of it", severity=WARNING))
    return out


def check_image_folder(
    img_dir: str | os.PathLike,
    ann_file: str | os.PathLike | None = None,
    classes: str | os.PathLike | Sequence[str] | None = None,
    read_images: bool = True,
    progress: bool = False,
    split: dict | None = None,
) -> FolderReport:
    """Check a classification dataset: ``img_dir/<class>/...`` (or a CSV ``ann_file`` of ``file,label`` rows
    relative to ``img_dir``), against ``classes`` when given (e.g. the training ``img_dir`` for a validation
    folder); ``split``: ``val_fraction``, ``subset``, ``split_seed`` of a part of the folder (its images only).
    Never modifies the inputs. Raises :class:`DatasetError` when the folder or CSV cannot be read
    at all (no class folders, no such folder, a CSV without ``file`` and ``label`` columns)."""
    from detkit.data.datasets.image_folder import ImageFolderDataset

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = ImageFolderDataset(img_dir, ann_file=ann_file, classes=classes, on_error="skip", **(split or {}))
    problems = [Problem(kind, message, record="image") for kind, message in ds.problems]
    stray = [str(w.message) for w in caught if "outside the class folders" in str(w.message)]
    problems += [Problem("image_outside_classes", m, severity=WARNING, record="file") for m in stray]
    counts = dict(zip(ds.class_names, ds.class_counts))
    empty = [m for k, m in ds.problems if k == "empty_class_folder"]  # errors already
    listed = {n for n in counts if any(f"class folder '{n}'" in m for m in empty)}
    problems += [
        Problem(
            "class_without_images",
            f"class '{n}' has no image in {ds.ann_file or ds.img_dir} (a split may lack a class: it is then not "
            "learned, or not measured, from this split)",
            severity=WARNING,
            record="category",
        )
        for n, c in counts.items()
        if c == 0 and n not in listed
    ]
    problems += _balance_problems(counts)
    sizes = _decode_all(ds.files, progress, problems) if read_images else Counter()
    source = ds.ann_file or ds.img_dir
    given = (
        "the classes given" if classes is not None else "the class folders" if ann_file is None else "the CSV labels"
    )
    checked = [
        f"classes: {given} ({len(ds.class_names)}), as ImageFolderDataset lists them",
        "files: every listed image exists and is not empty" + (", and decodes" if read_images else " (not decoded)"),
        f"balance: classes with under {MIN_IMAGES_WARN} images or under 1/{IMBALANCE_WARN:g} of the largest",
    ]
    if ds.held_out is not None:
        checked.insert(0, f"part: {ds.held_out}")
    return FolderReport(source, problems, counts, sizes, checked)


def check_split_root(
    root: str | os.PathLike,
    split: str | None = None,
    classes: str | os.PathLike | Sequence[str] | None = None,
    read_images: bool = True,
    progress: bool = False,
) -> list[FolderReport]:
    """Check each split folder of a split root ``root/<split>/<class>/<image>`` (Ultralytics' classification
    layout, :func:`detkit.data.folder_layout.split_folders`) with :func:`check_image_folder`: one report
    per split, train first. The other splits are checked against the training split's class folders (as
    data.val takes them: ``classes: ROOT/train``), unless ``classes`` is given (then every split is).
    ``split``: only that one (its folder name or train / val / test). Raises :class:`DatasetError` when
    ``root`` is not a split root or has no such split."""
    from detkit.data.folder_layout import split_folders

    root = os.fspath(root)
    splits = split_folders(root)
    if not splits:
        raise DatasetError(f"{root} is not a split root (train/<class>/<image>, val/<class>/<image>)")
    train = next((path for name, path in splits if name == "train"), None)
    chosen = [(n, p) for n, p in splits if split is None or split.lower() in (n, os.path.basename(p).lower())]
    if not chosen:
        names = ", ".join(os.path.basename(p) for _, p in splits)
        raise DatasetError(f"{root} has no split folder '{split}'; its split folders: {names}")
    reports = []
    for name, path in chosen:
        from_train = classes is None and train is not None and name != "train"
        report = check_image_folder(
            path, classes=train if from_train else classes, read_images=read_images, progress=progress
        )
        report.source = f"{root}, split {os.path.basename(path)} (images in {path})"
        if from_train:  # instead of "the classes given"
            count = len(report.class_counts)
            report.checked[0] = (
                f"classes: the training split's class folders ({count}: {train}), as data.val takes them"
            )
        reports.append(report)
    return reports


def check_folder_args(path: str, img_dir: str | None) -> None:
    """A missing CSV or folder is a :class:`DatasetError` naming which argument is which."""
    if img_dir is None and not os.path.isdir(path):
        state = "is a file" if os.path.exists(path) else "not found"
        raise DatasetError(
            f"{path} {state}: give a folder of class folders (IMG_DIR/<class>/<image>), a CSV of file,label rows "
            "and its image folder, or a COCO json and its image folder"
        )
    if img_dir is not None and not os.path.isdir(img_dir):
        raise DatasetError(f"image folder {img_dir} not found; give the folder the CSV's files are relative to")
