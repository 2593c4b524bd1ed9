"""``check_dataset``: every check of a COCO dataset that training and evaluation rely on, with a summary.

It runs :func:`detkit.data.validate.validate_coco` on the json (ids, keys, boxes, segmentations, areas),
then reads every image (it must decode at the size the json gives) and decodes every instance mask
(:func:`detkit.data.instance_masks.mask_problem`). What it reports as an error is what
``CocoDataset`` or COCO evaluation refuses, or what ``on_error: skip`` leaves out; what it passes,
``CocoDataset(with_masks=True)`` loads.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from detkit.data.folder_check import imbalance_line
from detkit.data.image_io import ImageReadError, decode_image, low_bit_depth_note, safe_join
from detkit.data.instance_masks import has_segmentation, mask_problem
from detkit.data.validate import (
    CAT_KEYS,
    ERROR,
    WARNING,
    DatasetError,
    Problem,
    ProblemReport,
    format_problems,
    load_coco_json,
    validate_coco,
)

__all__ = ["DatasetReport", "check_dataset", "check_records"]

TINY_AREA = 32 * 32


@dataclass
class DatasetReport(ProblemReport):
    """What :func:`check_dataset` found: all problems, a summary of the data and the list of checks run.

    ``split`` names the split of a dataset read from another format (a ``data.yaml`` split, a VOC split, a
    config's ``data.train``); ``notes`` are extra summary lines (e.g. what ``on_error: skip`` leaves out).
    """

    ann_file: str
    img_dir: str
    problems: list[Problem] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    checked: list[str] = field(default_factory=list)
    split: str | None = None
    notes: list[str] = field(default_factory=list)

    def format(self) -> str:
        """Human-readable report: every problem, then the summary and what was checked."""
        s = self.summary
        split = "" if self.split is None else f", {self.split}"
        lines = [format_problems(self.problems)] if self.problems else []
        lines += [
            f"Summary of {self.ann_file}{split} (images in {self.img_dir}):",
            f"  images: {s.get('images', 0)} ({s.get('images_without_annotations', 0)} without annotations)",
            f"  annotations: {s.get('annotations', 0)} ({s.get('crowd', 0)} crowd)",
            f"  tiny boxes (area < 32^2): {s.get('tiny_box_share', 0.0):.1%}",
            "  annotations per class:",
        ]
        lines += [f"    {name}: {n}" for name, n in s.get("per_class", {}).items()]
        lines += [imbalance_line(s.get("per_class", {}), "annotations"), *_sizes_line(s.get("sizes", Counter()))]
        lines += [f"  {note}" for note in self.notes]
        lines.append("Checked:")
        lines += [f"  {c}" for c in self.checked]
        lines.append(f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)")
        return "\n".join(lines)


def _sizes_line(sizes: Counter) -> list[str]:
    """The most common image sizes of the records (none when there are no images)."""
    if not sizes:
        return []
    shown = ", ".join(f"{h:g}x{w:g}: {n}" for (h, w), n in sizes.most_common(5))
    more = f" (+{len(sizes) - 5} other sizes)" if len(sizes) > 5 else ""
    return [f"  image sizes (h x w): {shown}{more}"]


def _where(src: str, i: int, im: dict) -> str:
    return f"{src}: image #{i} (id {im['id']!r}, file {im['file_name']!r})"


def _image_file_problem(im: dict, i: int, img_dir: str, src: str) -> Problem | None:
    """Decode one image; report it unreadable or of another size than the json's, else 16-bit data that reads
    nearly black (a ``low_bit_depth`` warning)."""
    where = _where(src, i, im)
    path = safe_join(img_dir, im["file_name"])
    try:
        image = decode_image(path)
    except ImageReadError as e:
        return Problem("unreadable_image", f"{where}: {e}", im["id"], record="image", index=i)
    h, w = image.shape[:2]
    if (h, w) == (im["height"], im["width"]):
        dark = low_bit_depth_note(path, image)
        return (
            Problem("low_bit_depth", f"{where}: {dark}", im["id"], severity=WARNING, record="image", index=i)
            if dark
            else None
        )
    turned = " (swapped: the EXIF orientation turns the image)" if (w, h) == (im["height"], im["width"]) else ""
    return Problem(
        "size_mismatch",
        f"{where}: the json says {im['width']}x{im['height']} but the image is {w}x{h} "
        f"(width x height, after EXIF orientation){turned}; write the real size or fix the file",
        im["id"],
        record="image",
        index=i,
    )


def _mask_problems(anns: list[tuple[int, dict]], im: dict, src: str, out: list[Problem]) -> None:
    """Decode the masks of one image's annotations (``(index, annotation)`` pairs) at the json's size."""
    h, w = int(im["height"]), int(im["width"])
    for k, a in anns:
        bad = mask_problem(a["segmentation"], h, w)
        if bad:
            kind, msg = bad
            out.append(
                Problem(
                    kind,
                    f"{src}: annotation #{k} (id {a['id']!r}, image id {a['image_id']!r}): {msg}",
                    a["image_id"],
                    a["id"],
                    severity=WARNING if kind == "empty_mask" else ERROR,
                    record="annotation",
                    index=k,
                )
            )


def _decode_all(
    data: dict, img_dir: str, src: str, read_images: bool, masks: bool, progress: bool, out: list[Problem]
) -> None:
    """Read every image and decode every mask not already reported, with a progress bar when asked."""
    from tqdm import tqdm

    bad_images = {p.index for p in out if p.record == "image"}
    bad_anns = {p.index for p in out if p.record == "annotation" and p.severity == ERROR}
    by_image: dict = defaultdict(list)
    if masks:
        for k, a in enumerate(data.get("annotations") or []):
            if k not in bad_anns and has_segmentation(a):
                by_image[a["image_id"]].append((k, a))
    images = data["images"]
    for i, im in enumerate(tqdm(images, desc="check_dataset", unit="img", disable=not progress, leave=False)):
        if i in bad_images:
            continue
        problem = _image_file_problem(im, i, img_dir, src) if read_images else None
        if problem:
            out.append(problem)
        _mask_problems(by_image.get(im["id"], []), im, src, out)


def _summary(data: dict, src: str, out: list[Problem]) -> dict:
    cats = {
        c["id"]: c["name"]
        for c in data.get("categories") or []
        if isinstance(c, dict) and not [k for k in CAT_KEYS if k not in c] and isinstance(c["id"], (int, str))
    }
    anns = [a for a in data.get("annotations") or [] if isinstance(a, dict)]
    plain = [a for a in anns if not a.get("iscrowd", 0)]
    per_cat = Counter(a.get("category_id") for a in plain if isinstance(a.get("category_id"), (int, str)))
    listed = isinstance(data.get("annotations"), list)  # else missing_key says it; no warning per category
    for cid, name in cats.items():
        if listed and per_cat[cid] == 0:
            out.append(
                Problem(
                    "unused_category",
                    f"{src}: category id {cid} ({name!r}) has no annotations; remove it or add examples",
                    severity=WARNING,
                    record="category",
                )
            )
    if anns and not plain:
        out.append(
            Problem(
                "no_annotations", f"{src}: every annotation is a crowd region: nothing to train on", severity=WARNING
            )
        )
    elif listed and not anns:
        out.append(
            Problem(
                "no_annotations",
                f"{src}: no annotations: every image is a negative (nothing to learn or evaluate); add the annotations",
                severity=WARNING,
            )
        )
    boxes = [
        a["bbox"]
        for a in plain
        if isinstance(a.get("bbox"), list)
        and len(a["bbox"]) == 4
        and all(isinstance(v, (int, float)) for v in a["bbox"])
    ]
    with_anns = {a.get("image_id") for a in plain if isinstance(a.get("image_id"), (int, str))}
    images = [im for im in data.get("images") or [] if isinstance(im, dict)]
    sizes = Counter(
        (im["height"], im["width"])
        for im in images
        if all(isinstance(im.get(k), (int, float)) and not isinstance(im.get(k), bool) for k in ("height", "width"))
    )
    return {
        "sizes": sizes,
        "images": len(images),
        "annotations": len(anns),
        "crowd": len(anns) - len(plain),
        "per_class": {f"{cats[c]} (id {c})": per_cat[c] for c in sorted(cats, key=lambda c: (str(type(c)), c))},
        "tiny_box_share": sum(b[2] * b[3] < TINY_AREA for b in boxes) / max(len(boxes), 1),
        "images_without_annotations": sum(
            im.get("id") not in with_anns for im in images if isinstance(im.get("id"), (int, str))
        ),
    }


def _check_paths(src: str, img_dir: str) -> None:
    """Refuse a missing or swapped ann_file / img_dir with one message that says which argument is which."""
    if os.path.isdir(src) and os.path.isfile(img_dir):
        raise DatasetError(
            f"the arguments look swapped: {src} is a folder and {img_dir} a file; give the COCO json "
            f"first, then the image folder: check_dataset {img_dir} {src}"
        )
    if not os.path.isdir(img_dir):
        what = "is a file, not a folder" if os.path.exists(img_dir) else "not found"
        raise DatasetError(
            f"image folder {img_dir} {what}; give the folder that the images' file_name are relative to as img_dir"
        )


def _segmentation_mode(data: dict, masks: bool | None) -> tuple[bool, str]:
    """Whether to check segmentations and the summary line that says so."""
    anns = [a for a in data.get("annotations") or [] if isinstance(a, dict)]
    n_poly = sum(isinstance(a.get("segmentation"), list) and bool(a["segmentation"]) for a in anns)
    n_rle = sum(isinstance(a.get("segmentation"), dict) for a in anns)
    if masks is None:
        masks = any(has_segmentation(a) and not a.get("iscrowd", 0) for a in anns)
        if not masks:
            return False, (
                "segmentations: not checked: no annotation has one (a box-only dataset; "
                "with_masks=True would refuse it; --masks checks anyway)"
            )
    if not masks:
        return False, "segmentations: not checked (--no-masks)"
    return True, (
        f"segmentations: every annotation's, as CocoDataset(with_masks=True) reads them ({n_poly} "
        f"polygon, {n_rle} RLE entries: structure, size, inside the image, decoded)"
    )


def check_dataset(
    ann_file: str | os.PathLike,
    img_dir: str | os.PathLike,
    read_images: bool = True,
    max_outside: float = 0.1,
    masks: bool | None = None,
    progress: bool = False,
) -> DatasetReport:
    """Run every check on a COCO dataset (reading the images too unless ``read_images=False``).

    Args:
        masks: check the segmentations (None: when any non-crowd annotation has one).
        progress: show a tqdm bar with an ETA while images and masks are decoded.
    Never modifies the inputs. Raises :class:`DatasetError` when the json or the folder cannot be read.
    """
    src, img_dir = os.fspath(ann_file), os.fspath(img_dir)
    _check_paths(src, img_dir)
    data = load_coco_json(src)
    opts = {"read_images": read_images, "max_outside": max_outside, "masks": masks, "progress": progress}
    return check_records(data, src, img_dir, **opts)


def check_records(
    data: dict,
    src: str,
    img_dir: str,
    found: Sequence[Problem] = (),
    source_line: str | None = None,
    read_images: bool = True,
    max_outside: float = 0.1,
    masks: bool | None = None,
    progress: bool = False,
) -> DatasetReport:
    """The checks of :func:`check_dataset` on COCO records already read: a json, or the records a dataset of
    another format made (``YOLODataset.load_annotations()``), with the ``found`` problems of that reading first.

    ``src`` names the records in messages; ``source_line`` replaces the first line of ``checked`` (what read them).
    """
    masks, seg_line = _segmentation_mode(data, masks)
    problems = list(found) + validate_coco(
        data, img_dir, src, check_files=True, check_segmentation=masks, check_area=True, max_outside=max_outside
    )
    if (read_images or masks) and isinstance(data.get("images"), list):
        _decode_all(data, img_dir, src, read_images, masks, progress, problems)
    summary = _summary(data, src, problems)
    margin = f"{max_outside:.0%} margin"
    checked = [
        source_line
        or "json: the images, annotations and categories lists, their keys, integer and unique ids, references",
        f"image files: exist inside {img_dir}"
        + (
            f", decode, have the size {'the json' if source_line is None else 'their records'} gives"
            if read_images
            else " (not decoded: --no-images)"
        ),
        f"boxes: [x, y, w, h], positive size, inside the image ({margin}); iscrowd 0/1; area (for evaluation)",
        seg_line,
    ]
    return DatasetReport(src, img_dir, problems, summary, checked)
