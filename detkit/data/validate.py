"""Checks of a COCO annotation dict against its image folder, shared by CocoDataset and check_dataset.

Every check returns :class:`Problem` records whose messages name the json file, the record (image,
annotation or category id) and the fix. ``CocoDataset`` raises on them or drops the bad records
(:func:`drop_bad_records`); ``tools/check_dataset.py`` prints them all
(:func:`detkit.data.dataset_check.check_dataset`). Severity: an ``error`` is what training (or COCO
evaluation) refuses or ``on_error: skip`` leaves out; a ``warning`` trains but is probably a mistake.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

from detkit.data.coco_file import is_int as _is_int
from detkit.data.coco_file import is_key as _is_key
from detkit.data.coco_file import load_coco_json, where_read
from detkit.data.drop_records import FILE_RECORDS, drop_bad_records
from detkit.data.image_io import UnsafePathError, safe_join
from detkit.data.instance_masks import box_mask_mismatch, degenerate_part_note, segmentation_problem
from detkit.data.problems import (
    ERROR,
    ON_ERROR_MODES,
    WARNING,
    DatasetError,
    Problem,
    ProblemReport,
    SkippedRecords,
    check_on_error,
    format_problems,
    problem_list,
)

__all__ = [
    "ERROR",
    "FILE_RECORDS",
    "ON_ERROR_MODES",
    "WARNING",
    "DatasetError",
    "Problem",
    "ProblemReport",
    "SkippedRecords",
    "check_on_error",
    "drop_bad_records",
    "format_problems",
    "load_coco_json",
    "problem_list",
    "validate_coco",
    "where_read",
]

IMAGE_KEYS = ("id", "file_name", "width", "height")
ANN_KEYS = ("id", "image_id", "category_id", "bbox")
CAT_KEYS = ("id", "name")


TEST_INFO_HINT = (
    " (COCO's image-info test files, e.g. image_info_test-dev2017.json, have none: a test-info file without "
    "annotations cannot be trained or evaluated on; give the split's instances json, or write "
    '"annotations": [] for a set of images without objects)'
)


def _records(data: dict, key: str, src: str, out: list[Problem]) -> list | None:
    """``data[key]`` when it is a list; else None and a ``missing_key`` problem (absent, null or another type)."""
    val = data.get(key)
    if isinstance(val, list):
        return val
    what = "is missing" if key not in data else "is null" if val is None else f"is a {type(val).__name__}, not a list"
    hint = TEST_INFO_HINT if key == "annotations" and val is None else ""
    out.append(
        Problem(
            "missing_key",
            f"{src}: top-level key '{key}' {what}; a COCO file needs 'images', 'annotations' and 'categories' "
            f"lists{hint}",
        )
    )
    return None


def _sorted(ids: set) -> list:
    try:
        return sorted(ids)
    except TypeError:  # mixed id types
        return sorted(ids, key=str)


def _missing(rec: Any, keys: tuple[str, ...]) -> list[str]:
    return list(keys) if not isinstance(rec, dict) else [k for k in keys if k not in rec]


def _recorder(out: list[Problem], where: str, **fields: Any) -> Callable[..., None]:
    """``add(kind, msg, severity=ERROR)``: append a Problem about one record (``where`` names it) to ``out``."""

    def add(kind: str, msg: str, severity: str = ERROR) -> None:
        out.append(Problem(kind, f"{where}: {msg}", severity=severity, **fields))

    return add


def _unique_id(rid: Any, seen: set | dict, add: Callable[..., None], record: str, about: str = "") -> bool:
    """Report an id that is no integer, or that an earlier record has; False when the record cannot be indexed.

    A new id is added to ``seen`` (a dict, e.g. image sizes, gets ``None`` until the caller fills it in).
    """
    if not _is_int(rid):
        add("bad_id", _id_problem(rid))
        if not _is_key(rid):
            return False
    if rid in seen:
        kind = "duplicate_ann_id" if record == "annotation" else f"duplicate_{record}_id"
        add(kind, f"{about}the id is used by an earlier {record} too; give every {record} a unique id")
        return False
    if isinstance(seen, dict):
        seen[rid] = None
    else:
        seen.add(rid)
    return True


def _id_problem(value: Any) -> str:
    if value is None:
        return "id is null; COCO ids are integers: write its id"
    fix = f" (write {value.strip()})" if isinstance(value, str) and value.strip().isdigit() else ""
    return f"id {value!r} is a {type(value).__name__}; COCO ids are integers{fix}"


def _check_categories(cats: list, src: str, out: list[Problem]) -> set:
    seen: set = set()
    names: dict = {}
    if not cats:
        out.append(
            Problem(
                "no_categories",
                f"{src}: 'categories' is empty; list the classes as "
                f"{{'id': 1, 'name': 'cat'}}, ... (the labels come from them)",
            )
        )
    for i, c in enumerate(cats):
        miss = _missing(c, CAT_KEYS)
        cid = c.get("id") if isinstance(c, dict) else None

        add = _recorder(out, f"{src}: category #{i} (id {cid!r})", record="category", index=i)

        if miss:
            add("missing_key", f"lacks {miss}; every category needs an integer 'id' and a 'name'")
        if "id" in miss or not _unique_id(cid, seen, add, "category", f"({c.get('name')!r}) "):
            continue
        name = c.get("name")
        if "name" in c and (not isinstance(name, str) or not name.strip()):
            add("bad_name", f"name {name!r} is not a non-empty string; name the class")
        elif isinstance(name, str) and name in names:
            add(
                "duplicate_category_name",
                f"name {name!r} is also the name of category id {names[name]!r}: two "
                "classes with one name; merge them or rename one",
                WARNING,
            )
        elif isinstance(name, str):
            names[name] = cid
    return seen


def _image_size(im: dict) -> tuple[float, float] | None:
    h, w = im.get("height"), im.get("width")
    ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in (h, w))
    return (float(h), float(w)) if ok else None


def _check_images(images: list, img_dir: str, src: str, check_files: bool, out: list[Problem]) -> dict:
    """Check image records; return ``{image_id: (height, width) or None}`` of the first record of each id."""
    sizes: dict = {}
    files: dict = {}  # resolved path -> where the first record of that file is
    for i, im in enumerate(images):
        iid = im.get("id") if isinstance(im, dict) else None
        where = f"{src}: image #{i} (id {iid!r})"

        add = _recorder(out, where, record="image", index=i, image_id=iid)

        miss = _missing(im, IMAGE_KEYS)
        if miss:
            add("missing_key", f"lacks {miss}; add them (width/height are the image size in pixels)")
            if "id" in miss:
                continue
        if not _unique_id(iid, sizes, add, "image", f"(file {im.get('file_name')!r}) "):
            continue
        sizes[iid] = _image_size(im)
        if not miss and sizes[iid] is None:
            add(
                "bad_size",
                f"width={im['width']!r}, height={im['height']!r} must be positive numbers; write the real image size",
            )
        if "file_name" in im:
            _check_file(im, f"#{i} (id {iid!r}, file {im['file_name']!r})", img_dir, check_files, files, add)
    return sizes


def _check_file(im: dict, me: str, img_dir: str, check_files: bool, files: dict, add: Callable[..., None]) -> None:
    """Report an image's ``file_name`` that leaves ``img_dir``, names no file, or names the file of an earlier record.

    ``files`` maps the resolved paths seen so far to their record (``me``: ``#index (id, file)``); paths are
    compared normalised (``./a.png`` and ``a.png``, ``a\\b.png`` and ``a/b.png`` are one file).
    """
    try:
        path = safe_join(img_dir, im["file_name"])
    except UnsafePathError as e:
        add("unsafe_path", str(e))
        return
    first = files.setdefault(os.path.normcase(path), me)
    if first != me:
        add(
            "duplicate_file",
            f"file_name {im['file_name']!r} is the file of image {first} too: one image in two records trains "
            f"each with part of its boxes, and evaluation scores one record's predictions against the other's "
            f"ground truth; merge the two records (their annotations under one image id) or fix file_name",
        )
    elif check_files and not os.path.isfile(path):
        add(
            "missing_image",
            f"image file {im['file_name']!r} not found in {img_dir}; add the file, "
            f"fix file_name or img_dir, or remove the image",
        )


def _box_problem(box: Any, size: tuple[float, float] | None, max_outside: float) -> tuple[str, str] | None:
    if (
        not isinstance(box, (list, tuple))
        or len(box) != 4
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)
    ):
        return "bad_box", f"bbox {box!r} is not [x, y, width, height] of 4 finite numbers; fix or remove it"
    x, y, w, h = box
    if (w == 0 or h == 0) and w >= 0 and h >= 0:  # no area: nothing to learn; under 'skip' its image stays
        return "empty_box", (
            f"bbox {list(box)} has a zero width or height; boxes are [x, y, width, height] in pixels: fix the box "
            "or remove the annotation"
        )
    if w <= 0 or h <= 0:
        return "bad_box", (
            f"bbox {list(box)} has a zero or negative width/height; boxes are "
            f"[x, y, width, height] in pixels: fix the box or remove the annotation"
        )
    if size is None:
        return None
    ih, iw = size
    mx, my = max_outside * iw, max_outside * ih
    far = x < -mx or y < -my or x + w > iw + mx or y + h > ih + my
    if far or min(x + w, iw) <= max(x, 0) or min(y + h, ih) <= max(y, 0):
        return "box_outside", (
            f"bbox {list(box)} lies outside the {iw:g}x{ih:g} image (more than "
            f"{max_outside:.0%} of its size, or no overlap); fix the box or the image size"
        )
    return None


def _annotation_problem(a: dict, sizes: dict, cat_ids: set, opts: dict) -> tuple[str, str] | None:
    """The first problem of one annotation (that has every required key), or None."""
    iid = a["image_id"]
    for key in ("image_id", "category_id"):
        if not _is_key(a[key]):
            return "bad_id", f"{key} {a[key]!r} is not an integer id; fix it"
    if iid not in sizes:
        if not opts["images_listed"]:
            return None  # 'images' itself is missing: reported once for the file
        hint = "; ids are integers" if isinstance(iid, str) else ""
        return "unknown_image", f"image_id is not in 'images'{hint}; add the image or remove the annotation"
    if a["category_id"] not in cat_ids:
        hint = " (a string; ids are integers)" if isinstance(a["category_id"], str) else ""
        return "unknown_category", (
            f"category_id {a['category_id']!r}{hint} is not in 'categories' (known ids: "
            f"{_sorted(cat_ids)[:20]}{opts['bad_categories']}); fix the id or add the category"
        )
    if a.get("iscrowd", 0) not in (0, 1):  # True/False compare equal to 1/0
        return "bad_iscrowd", f"iscrowd {a['iscrowd']!r} must be 0 or 1; fix it"
    bad = _box_problem(a["bbox"], sizes[iid], opts["max_outside"])
    if bad:
        return bad
    if opts["check_segmentation"] and sizes[iid] is not None:
        bad = segmentation_problem(a.get("segmentation"), *sizes[iid], max_outside=opts["max_outside"])
        if bad:
            return bad
    area = a.get("area")
    if opts["check_area"] and not (
        isinstance(area, (int, float)) and not isinstance(area, bool) and math.isfinite(area) and area >= 0
    ):
        what = "has no 'area'" if "area" not in a else f"area {area!r} is not a number >= 0"
        return "bad_area", f"{what}; COCO evaluation needs it (the mask or box area in pixels): add it"
    return None


def _check_annotations(anns: list, sizes: dict, cat_ids: set, src: str, opts: dict, out: list[Problem]) -> None:
    seen: set = set()
    for i, a in enumerate(anns):
        aid = a.get("id") if isinstance(a, dict) else None
        iid = a.get("image_id") if isinstance(a, dict) else None

        where = f"{src}: annotation #{i} (id {aid!r}, image id {iid!r})"
        add = _recorder(out, where, record="annotation", index=i, image_id=iid, ann_id=aid)

        miss = _missing(a, ANN_KEYS)
        if miss:
            add("missing_key", f"lacks {miss}; every annotation needs id, image_id, category_id and bbox")
            continue
        if not _unique_id(aid, seen, add, "annotation"):
            continue
        bad = _annotation_problem(a, sizes, cat_ids, opts)
        if bad:
            add(*bad)
        elif opts["check_segmentation"] and sizes.get(a["image_id"]) is not None:
            loose = box_mask_mismatch(a["bbox"], a.get("segmentation"), *sizes[a["image_id"]])
            if loose:
                add("box_mask_mismatch", loose, WARNING)
            stray = degenerate_part_note(a.get("segmentation"))
            if stray:
                add("polygon_part_dropped", stray, WARNING)


def validate_coco(
    data: dict,
    img_dir: str | os.PathLike,
    ann_file: str | os.PathLike = "<annotations>",
    *,
    check_files: bool = True,
    check_segmentation: bool = False,
    check_area: bool = False,
    max_outside: float = 0.1,
) -> list[Problem]:
    """Check a loaded COCO dict and its image folder; return every problem found (none: ``[]``).

    Args:
        data: the parsed json (``images``, ``annotations``, ``categories``; each a list, ``annotations`` may be
            empty).
        img_dir: folder that image ``file_name`` s are relative to.
        ann_file: the json path, used in messages.
        check_files: also check that each image file exists.
        check_segmentation: also check each annotation's polygons or RLE
            (:func:`detkit.data.instance_masks.segmentation_problem`; for masks and semantic maps).
        check_area: also check that each annotation has an ``area`` (COCO evaluation needs it).
        max_outside: a box or polygon may extend this fraction of the image size beyond the border.
    """
    src, img_dir, out = os.fspath(ann_file), os.fspath(img_dir), []
    cats = _records(data, "categories", src, out)
    images = _records(data, "images", src, out)
    anns = _records(data, "annotations", src, out)
    cat_ids = _check_categories(cats or [], src, out) if cats is not None else set()
    bad_cats = sum(not (isinstance(c, dict) and _is_int(c.get("id"))) for c in cats or [])
    sizes = _check_images(images or [], img_dir, src, check_files, out)
    opts = {
        "bad_categories": f"; {bad_cats} category record(s) have no integer id: fix them first" if bad_cats else "",
        "images_listed": images is not None,
        "check_segmentation": check_segmentation,
        "check_area": check_area,
        "max_outside": max_outside,
    }
    _check_annotations(anns or [], sizes, cat_ids, src, opts, out)
    return out
