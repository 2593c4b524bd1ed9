"""Checks of a COCO annotation dict against its image folder, shared by CocoDataset and check_dataset.

Every check returns :class:`Problem` records whose messages name the json file, the record (image,
annotation or category id) and the fix. ``CocoDataset`` raises on them or drops the bad records
(:func:`drop_bad_records`); ``tools/check_dataset.py`` prints them all (:func:`check_dataset`).
"""
from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from detkit.data.image_io import ImageReadError, UnsafePathError, read_image, safe_join

__all__ = ["Problem", "DatasetError", "DatasetReport", "load_coco_json", "validate_coco",
           "drop_bad_records", "check_dataset", "format_problems"]

ERROR, WARNING = "error", "warning"
IMAGE_KEYS = ("id", "file_name", "width", "height")
ANN_KEYS = ("id", "image_id", "category_id", "bbox")
CAT_KEYS = ("id", "name")
TINY_AREA = 32 * 32


class DatasetError(ValueError):
    """A dataset that cannot be used as given; the message names the file, the record and the fix."""


@dataclass(frozen=True)
class Problem:
    """One finding: ``kind`` (e.g. ``bad_box``), a message naming file, record and fix, and where it is.

    ``record`` is ``'image'``, ``'annotation'``, ``'category'`` or ``'file'``; ``index`` is the
    record's position in its json list (``None`` for file-level problems).
    """

    kind: str
    message: str
    image_id: Any = None
    ann_id: Any = None
    severity: str = ERROR
    record: str = "file"
    index: int | None = None


def load_coco_json(ann_file: str | os.PathLike) -> dict:
    """Read a COCO json file into a dict; raise :class:`DatasetError` naming the file when it can't."""
    ann_file = os.fspath(ann_file)
    if not os.path.isfile(ann_file):
        what = "is a directory, not a file" if os.path.isdir(ann_file) else "not found"
        raise DatasetError(f"annotation file {ann_file} {what}; check the ann_file path")
    try:
        with open(ann_file, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{ann_file}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
                           f"fix or regenerate the annotation file") from e
    except (UnicodeDecodeError, OSError) as e:
        raise DatasetError(f"{ann_file}: cannot read the annotation file ({e}); "
                           f"it must be UTF-8 JSON in COCO format") from e
    if not isinstance(data, dict):
        raise DatasetError(f"{ann_file}: a COCO annotation file is a JSON object with 'images', "
                           f"'annotations' and 'categories', got a {type(data).__name__}")
    return data


def _records(data: dict, key: str, src: str, out: list[Problem], required: bool = True) -> list:
    val = data.get(key, None if required else [])
    if isinstance(val, list):
        return val
    what = "is missing" if val is None else f"is a {type(val).__name__}, not a list"
    out.append(Problem("missing_key", f"{src}: top-level key '{key}' {what}; a COCO file needs "
                       f"'images', 'annotations' and 'categories' lists"))
    return []


def _list(data: dict, key: str) -> list:
    val = data.get(key)
    return val if isinstance(val, list) else []


def _sorted(ids: set) -> list:
    try:
        return sorted(ids)
    except TypeError:  # mixed id types
        return sorted(ids, key=str)


def _missing(rec: Any, keys: tuple[str, ...]) -> list[str]:
    return list(keys) if not isinstance(rec, dict) else [k for k in keys if k not in rec]


def _check_categories(cats: list, src: str, out: list[Problem]) -> set:
    seen: set = set()
    for i, c in enumerate(cats):
        miss = _missing(c, CAT_KEYS)
        cid = c.get("id") if isinstance(c, dict) else None
        if miss:
            out.append(Problem("missing_key", f"{src}: category #{i} (id {cid}) lacks {miss}; "
                               f"every category needs an 'id' and a 'name'", record="category", index=i))
        if cid is None:
            continue
        if cid in seen:
            out.append(Problem("duplicate_category_id", f"{src}: category #{i} ({c.get('name')!r}): id {cid} "
                               f"is used by an earlier category too; give every category a unique id",
                               record="category", index=i))
        seen.add(cid)
    return seen


def _check_images(images: list, img_dir: str, src: str, check_files: bool,
                  out: list[Problem]) -> dict:
    """Check image records; return ``{image_id: (height, width)}`` of the first record of each id."""
    sizes: dict = {}
    for i, im in enumerate(images):
        iid = im.get("id") if isinstance(im, dict) else None
        where = f"{src}: image #{i} (id {iid})"

        def add(kind: str, msg: str) -> None:
            out.append(Problem(kind, f"{where}: {msg}", image_id=iid, record="image", index=i))

        miss = _missing(im, IMAGE_KEYS)
        if miss:
            add("missing_key", f"lacks {miss}; add them (width/height are the image size in pixels)")
            if "id" in miss:
                continue
        if iid in sizes:
            add("duplicate_image_id", f"the id (file {im.get('file_name')!r}) is used by an earlier image "
                "too; give every image a unique id")
            continue
        h, w = im.get("height"), im.get("width")
        ok_size = all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in (h, w))
        if not miss and not ok_size:
            add("bad_size", f"width={w!r}, height={h!r} must be positive numbers; write the real image size")
        sizes[iid] = (float(h), float(w)) if ok_size else None
        if "file_name" not in im:
            continue
        try:
            path = safe_join(img_dir, im["file_name"])
        except UnsafePathError as e:
            add("unsafe_path", str(e))
            continue
        if check_files and not os.path.isfile(path):
            add("missing_image", f"image file {im['file_name']!r} not found in {img_dir}; add the file, "
                f"fix file_name or img_dir, or remove the image")
    return sizes


def _box_problem(box: Any, size: tuple[float, float] | None, max_outside: float) -> tuple[str, str] | None:
    if (not isinstance(box, (list, tuple)) or len(box) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                       for v in box)):
        return "bad_box", f"bbox {box!r} is not [x, y, width, height] of 4 finite numbers; fix or remove it"
    x, y, w, h = box
    if w <= 0 or h <= 0:
        return "bad_box", (f"bbox {list(box)} has a zero or negative width/height; boxes are "
                           f"[x, y, width, height] in pixels: fix the box or remove the annotation")
    if size is None:
        return None
    ih, iw = size
    mx, my = max_outside * iw, max_outside * ih
    far = x < -mx or y < -my or x + w > iw + mx or y + h > ih + my
    if far or min(x + w, iw) <= max(x, 0) or min(y + h, ih) <= max(y, 0):
        return "box_outside", (f"bbox {list(box)} lies outside the {iw:g}x{ih:g} image (more than "
                               f"{max_outside:.0%} of its size, or no overlap); fix the box or the image size")
    return None


def _seg_problem(seg: Any) -> str | None:
    if isinstance(seg, list):
        if not seg or not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in seg):
            return "polygons must be a non-empty list of [x1, y1, x2, y2, ...] with 3 or more points"
        return None
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        return None
    return f"segmentation {str(seg)[:40]!r} is neither polygons nor RLE {{'size', 'counts'}}"


def _check_annotations(anns: list, sizes: dict, cat_ids: set, src: str, check_segmentation: bool,
                       max_outside: float, out: list[Problem]) -> None:
    seen: set = set()
    for i, a in enumerate(anns):
        aid = a.get("id") if isinstance(a, dict) else None
        iid = a.get("image_id") if isinstance(a, dict) else None
        where = f"{src}: annotation #{i} (id {aid}, image id {iid})"

        def add(kind: str, msg: str) -> None:
            out.append(Problem(kind, f"{where}: {msg}", image_id=iid, ann_id=aid,
                               record="annotation", index=i))

        miss = _missing(a, ANN_KEYS)
        if miss:
            add("missing_key", f"lacks {miss}; every annotation needs id, image_id, category_id and bbox")
            continue
        if aid in seen:
            add("duplicate_ann_id", "the id is used by an earlier annotation too; give every annotation a unique id")
            continue
        seen.add(aid)
        if iid not in sizes:
            add("unknown_image", "image_id is not in 'images'; add the image or remove the annotation")
            continue
        if a["category_id"] not in cat_ids:
            add("unknown_category", f"category_id {a['category_id']!r} is not in 'categories' "
                f"(known ids: {_sorted(cat_ids)[:20]}); fix the id or add the category")
            continue
        bad = _box_problem(a["bbox"], sizes[iid], max_outside)
        if bad:
            add(*bad)
            continue
        if check_segmentation:
            msg = _seg_problem(a.get("segmentation"))
            if msg:
                add("bad_segmentation", f"{msg}; fix it or build the dataset with with_masks=False")


def validate_coco(data: dict, img_dir: str | os.PathLike, ann_file: str | os.PathLike = "<annotations>",
                  *, check_files: bool = True, check_segmentation: bool = False,
                  max_outside: float = 0.1) -> list[Problem]:
    """Check a loaded COCO dict and its image folder; return every problem found (none: ``[]``).

    Args:
        data: the parsed json (``images``, ``annotations``, ``categories``; ``annotations`` may be absent).
        img_dir: folder that image ``file_name`` s are relative to.
        ann_file: the json path, used in messages.
        check_files: also check that each image file exists.
        check_segmentation: also check that each annotation has polygons or RLE (for masks).
        max_outside: a box may extend this fraction of the image size beyond the border.
    """
    src, img_dir, out = os.fspath(ann_file), os.fspath(img_dir), []
    cats = _records(data, "categories", src, out)
    images = _records(data, "images", src, out)
    anns = _records(data, "annotations", src, out, required=False)
    cat_ids = _check_categories(cats, src, out)
    sizes = _check_images(images, img_dir, src, check_files, out)
    _check_annotations(anns, sizes, cat_ids, src, check_segmentation, max_outside, out)
    return out


def drop_bad_records(data: dict, problems: list[Problem]) -> tuple[dict, dict[str, Counter]]:
    """Return a copy of ``data`` without the images/annotations that have errors, and counts by kind.

    Annotations of dropped images go too (counted as ``image_dropped``); of duplicated ids the first
    record stays. File- and category-level errors can't be dropped: they raise :class:`DatasetError`.
    """
    errors = [p for p in problems if p.severity == ERROR]
    fatal = [p for p in errors if p.record in ("file", "category")]
    if fatal:
        raise DatasetError(format_problems(fatal, limit=5))
    bad = {"image": {p.index for p in errors if p.record == "image"},
           "annotation": {p.index for p in errors if p.record == "annotation"}}
    counts = {"image": Counter(), "annotation": Counter()}
    for p in errors:
        counts[p.record][p.kind] += 1
    images = [im for i, im in enumerate(_list(data, "images")) if i not in bad["image"]]
    keep_ids = {im["id"] for im in images}
    anns = []
    for i, a in enumerate(_list(data, "annotations")):
        if i in bad["annotation"]:
            continue
        if a["image_id"] not in keep_ids:
            counts["annotation"]["image_dropped"] += 1
            continue
        anns.append(a)
    return {**data, "images": images, "annotations": anns}, counts


def format_problems(problems: list[Problem], limit: int | None = None) -> str:
    """One line per problem (``ERROR [kind] message``), at most ``limit`` of them plus a count of the rest."""
    shown = problems if limit is None else problems[:limit]
    lines = [f"{p.severity.upper()} [{p.kind}] {p.message}" for p in shown]
    if len(problems) > len(shown):
        lines.append(f"... and {len(problems) - len(shown)} more (tools/check_dataset.py lists them all)")
    return "\n".join(lines)


@dataclass
class DatasetReport:
    """What :func:`check_dataset` found: all problems and a summary of the data."""

    ann_file: str
    img_dir: str
    problems: list[Problem] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == WARNING]

    def format(self) -> str:
        """Human-readable report: every problem, then the summary."""
        s = self.summary
        lines = [format_problems(self.problems)] if self.problems else []
        lines += [f"Summary of {self.ann_file} (images in {self.img_dir}):",
                  f"  images: {s.get('images', 0)} ({s.get('images_without_annotations', 0)} without annotations)",
                  f"  annotations: {s.get('annotations', 0)} ({s.get('crowd', 0)} crowd)",
                  f"  tiny boxes (area < 32^2): {s.get('tiny_box_share', 0.0):.1%}",
                  "  annotations per class:"]
        lines += [f"    {name}: {n}" for name, n in s.get("per_class", {}).items()]
        lines.append(f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)")
        return "\n".join(lines)


def _check_image_files(data: dict, img_dir: str, src: str, skip: set, out: list[Problem]) -> None:
    """Decode every image not already reported; report unreadable files and sizes unlike the json's."""
    for i, im in enumerate(_list(data, "images")):
        if i in skip:
            continue
        where = f"{src}: image #{i} (id {im['id']}, file {im['file_name']!r})"
        try:
            h, w = read_image(safe_join(img_dir, im["file_name"])).shape[:2]
        except ImageReadError as e:
            out.append(Problem("unreadable_image", f"{where}: {e}", im["id"], record="image", index=i))
            continue
        if (h, w) != (im["height"], im["width"]):
            turned = " (swapped: the EXIF orientation turns the image)" if (w, h) == (im["height"], im["width"]) else ""
            out.append(Problem("size_mismatch", f"{where}: the json says {im['width']}x{im['height']} but "
                               f"the image is {w}x{h} (width x height, after EXIF orientation){turned}; "
                               f"write the real size or fix the file", im["id"], record="image", index=i))


def _summary(data: dict, src: str, out: list[Problem]) -> dict:
    cats = {c["id"]: c["name"] for c in _list(data, "categories") if not _missing(c, CAT_KEYS)}
    anns = [a for a in _list(data, "annotations") if isinstance(a, dict)]
    plain = [a for a in anns if not a.get("iscrowd", 0)]
    per_cat = Counter(a.get("category_id") for a in plain)
    for cid, name in cats.items():
        if per_cat[cid] == 0:
            out.append(Problem("unused_category", f"{src}: category id {cid} ({name!r}) has no annotations; "
                               f"remove it or add examples", severity=WARNING, record="category"))
    boxes = [a["bbox"] for a in plain if _box_problem(a.get("bbox"), None, 0.0) is None]
    with_anns = {a.get("image_id") for a in plain}
    images = [im for im in _list(data, "images") if isinstance(im, dict)]
    return {"images": len(images), "annotations": len(anns), "crowd": len(anns) - len(plain),
            "per_class": {f"{cats[c]} (id {c})": per_cat[c] for c in _sorted(set(cats))},
            "tiny_box_share": sum(b[2] * b[3] < TINY_AREA for b in boxes) / max(len(boxes), 1),
            "images_without_annotations": sum(im.get("id") not in with_anns for im in images)}


def check_dataset(ann_file: str | os.PathLike, img_dir: str | os.PathLike, read_images: bool = True,
                  max_outside: float = 0.1) -> DatasetReport:
    """Run every check on a COCO dataset (reading the images too unless ``read_images=False``).

    Never modifies the inputs. Raises :class:`DatasetError` when the json is missing or not valid JSON.
    """
    src, img_dir = os.fspath(ann_file), os.fspath(img_dir)
    if not os.path.isdir(img_dir):
        raise DatasetError(f"image folder {img_dir} not found; check the img_dir path")
    data = load_coco_json(src)
    problems = validate_coco(data, img_dir, src, check_files=True, max_outside=max_outside)
    if read_images:
        reported = {p.index for p in problems if p.record == "image"}
        _check_image_files(data, img_dir, src, reported, problems)
    summary = _summary(data, src, problems)
    return DatasetReport(src, img_dir, problems, summary)
