"""``check_seg_folder``: every check of a semantic-segmentation folder dataset (``SegFolderDataset``) with a summary.

It reads the data as ``SegFolderDataset`` does: images paired with label maps by relative path and stem, each
label map's values 0..C-1 or 255 (ignore), its size equal to the image's. What it reports as an error is what
the dataset refuses (or ``on_error: skip`` leaves out): an image without its label map, an unreadable image or
label map, a colour map, a value past the classes, a size unlike the image's. Warnings train but deserve a
look: a class that no label map holds, label maps without an image, a split that is mostly ``ignore``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detkit.data.datasets.seg_files import image_size_as_read, index_lines_warning
from detkit.data.datasets.seg_folder import binary_mask_hint, label_map_path, size_mismatch
from detkit.data.image_io import ImageReadError, read_image
from detkit.data.validate import WARNING, DatasetError, Problem, ProblemReport, format_problems

__all__ = ["SegFolderReport", "check_seg_folder"]

IGNORE_WARN = 0.5  # a split whose pixels are over half "ignore" (255) is reported


@dataclass
class SegFolderReport(ProblemReport):
    """What :func:`check_seg_folder` found: problems, images and pixel shares per class, image sizes."""

    source: str
    problems: list[Problem] = field(default_factory=list)
    class_images: dict[str, int] = field(default_factory=dict)  # class -> label maps that hold it
    class_pixels: dict[str, int] = field(default_factory=dict)  # class -> labelled pixels
    ignored: int = 0  # pixels of value 255
    sizes: Counter = field(default_factory=Counter)  # (h, w) -> images
    checked: list[str] = field(default_factory=list)
    counts: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))  # pixels per label value

    def format(self) -> str:
        """Every problem, the per-class table (label maps, pixel share), the ignore share, sizes, the checks."""
        total = sum(self.class_pixels.values()) + self.ignored
        width = max([len("class")] + [len(n) for n in self.class_images])
        lines = [format_problems(self.problems)] if self.problems else []
        lines += [
            f"Summary of {self.source}: {sum(self.sizes.values())} image(s) read, {len(self.class_images)} classes"
        ]
        lines.append(f"    {'class':<{width}}  {'maps':>6}  pixels")
        lines += [
            f"    {n:<{width}}  {self.class_images[n]:>6}  {self.class_pixels[n] / max(total, 1):6.1%}"
            for n in self.class_images
        ]
        lines.append(f"  ignore (255): {self.ignored / max(total, 1):.1%} of the pixels")
        if self.sizes:
            shown = ", ".join(f"{h}x{w}: {n}" for (h, w), n in self.sizes.most_common(5))
            more = f" (+{len(self.sizes) - 5} other sizes)" if len(self.sizes) > 5 else ""
            lines.append(f"  image sizes (h x w): {shown}{more}")
        lines += ["Checked:", *(f"  {c}" for c in self.checked)]
        lines.append(f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)")
        return "\n".join(lines)


def _pairing_problems(ds: Any) -> list[Problem]:
    """Stems of ``split_file`` without an image and images of the split without their label map (errors: the
    dataset refuses them), label maps without any image of ``img_dir`` (a warning)."""
    root, masks = Path(ds.img_dir), Path(ds.mask_dir)
    images = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in ds.img_suffixes]
    expected = {p: masks / label_map_path(p.relative_to(root), ds.mask_suffix) for p in images}
    paired = set(ds.images)
    problems = [
        Problem(
            "missing_image",
            f"split_file {ds.split_file} line {n}: stem {stem!r} has no image in img_dir {ds.img_dir}; fix the list",
            record="image",
        )
        for n, stem in ds.split_missing
    ]
    problems += [
        Problem(
            "no_label_map",
            f"image {p} has no label map {expected[Path(p)]}"
            f"; add it (same relative path and stem, mask_suffix {ds.mask_suffix}) or remove the image",
            record="image",
        )
        for p in sorted(set(ds.listed_images))
        if p not in paired
    ]
    named = set(expected.values())
    orphans = sorted(m for m in masks.rglob(f"*{ds.mask_suffix}") if m.is_file() and m not in named)
    if orphans:
        problems.append(
            Problem(
                "unused_files",
                f"{len(orphans)} label map(s) in {masks} have no image, e.g. {orphans[0]} (a "
                "misnamed image? they are not trained on)",
                severity=WARNING,
            )
        )
    return problems


def _image_size(path: str, read_images: bool) -> tuple[int, int]:
    """(h, w) of an image as training reads it: decoded, or from its header (turned by its EXIF orientation,
    as reading applies it: :func:`~detkit.data.datasets.seg_files.image_size_as_read`)."""
    return read_image(path).shape[:2] if read_images else image_size_as_read(path)


def _read_pairs(ds: Any, report: SegFolderReport, read_images: bool, progress: bool) -> None:
    """Read every label map (and image) as training does; count pixels per class; note each bad pair."""
    from tqdm import tqdm

    pixels = np.zeros(256, np.int64)
    holding = np.zeros(256, np.int64)
    for i in tqdm(range(len(ds)), desc="reading", unit="img", disable=None if progress else True):
        try:
            h, w = _image_size(ds.images[i], read_images)
        except ImageReadError as e:
            report.problems.append(Problem("unreadable_image", str(e), record="image"))
            continue
        try:
            sem = ds.read_label_map(i)
        except (DatasetError, ImageReadError) as e:
            report.problems.append(Problem("bad_label_map", str(e), record="image"))
            continue
        if sem.shape != (h, w):
            report.problems.append(
                Problem("size_mismatch", size_mismatch(ds.masks[i], ds.images[i], sem.shape, (h, w)), record="image")
            )
            continue
        counts = np.bincount(sem.ravel().astype(np.int64), minlength=256)[:256]
        pixels += counts
        holding += counts > 0
        report.sizes[(h, w)] += 1
    names = ds.class_names
    report.counts = pixels
    report.class_images = {n: int(holding[k]) for k, n in enumerate(names)}
    report.class_pixels = {n: int(pixels[k]) for k, n in enumerate(names)}
    report.ignored = int(pixels[255])


def _listed(ds: Any) -> str:
    """Which images are paired: ``of IMG_DIR``, or ``listed in SPLIT_FILE (N stems) of IMG_DIR``."""
    if ds.split_file is None:
        return f"of {ds.img_dir}"
    return f"listed in {ds.split_file} ({len(ds.listed_images) + len(ds.split_missing)} stems) of {ds.img_dir}"


def split_key(source: str) -> str:
    """``data.train`` from a source such as ``data.train of x.yaml``; ``data.train`` when it names no split."""
    first = source.split(" ", 1)[0]
    return first if first.startswith("data.") else "data.train"


def check_seg_folder(ds: Any, source: str, read_images: bool = True, progress: bool = False) -> SegFolderReport:
    """Check a built ``SegFolderDataset`` ``ds`` (``source`` names it in the summary, e.g. ``data.val of x.yaml``):
    pairing, every label map (and image, unless ``read_images`` is False: sizes from the headers), classes."""
    report = SegFolderReport(source, _pairing_problems(ds))
    _read_pairs(ds, report, read_images, progress)
    report.problems += [
        Problem(
            "class_without_pixels",
            f"class '{n}' (value {k}) is in no label map of {ds.mask_dir} (a split may "
            "lack a class: it is then not learned, or not measured, from this split)",
            severity=WARNING,
            record="category",
        )
        for k, (n, c) in enumerate(report.class_images.items())
        if c == 0
    ]
    file_names = ds.class_names[1:] if getattr(ds, "background", None) is not None else ds.class_names
    numbered = index_lines_warning(ds.classes_file, file_names) if getattr(ds, "classes_file", None) else None
    if numbered:
        report.problems.append(Problem("numbered_class_names", numbered, severity=WARNING, record="category"))
    hint = binary_mask_hint(report.counts, ds.class_names, split_key(source))
    if hint:
        report.problems.append(Problem("ignore_as_class", hint, severity=WARNING))
    total = sum(report.class_pixels.values()) + report.ignored
    if total and report.ignored > IGNORE_WARN * total:
        report.problems.append(
            Problem(
                "mostly_ignored",
                f"{report.ignored / total:.0%} of the pixels of {ds.mask_dir} are 255 (ignore): "
                "they teach nothing; is 255 meant as a class?",
                severity=WARNING,
            )
        )
    report.checked = [
        f"classes: {len(ds.class_names)} ({', '.join(ds.class_names[:6])}{', ...' if len(ds.class_names) > 6 else ''})",
        f"pairs: every image {_listed(ds)} has a label map in {ds.mask_dir} (suffix {ds.mask_suffix})",
        "label maps: decode, one channel, values 0..C-1 or 255, the size of their image"
        + ("" if read_images else " (images not decoded: sizes from their headers)"),
    ]
    return report
