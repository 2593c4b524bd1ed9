"""Training on a subset of a COCO file's categories (MMDetection's ``metainfo.classes``): ``CocoDataset(classes=)``."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from detkit.data.coco_file import is_key
from detkit.data.validate import DatasetError


def check_keep_classes(classes: Sequence[str], ann_file: str) -> list[str]:
    """``classes`` as a list of distinct names; a string, an empty list or repeated names are a DatasetError."""
    if isinstance(classes, str) or not isinstance(classes, Sequence) or not classes:
        raise DatasetError(
            f"{ann_file}: the kept classes must be a non-empty list of category names (e.g. classes: [person, car]),"
            f" got {classes!r}"
        )
    names = [str(c) for c in classes]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DatasetError(f"{ann_file}: the kept classes name {repeated} more than once; list each category once")
    return names


def keep_categories(data: dict, names: Sequence[str], ann_file: str) -> dict:
    """A copy of the COCO dict ``data`` with only the categories named in ``names`` and their annotations (the
    images all stay); a name the file lacks is a DatasetError with the nearest category names."""
    if not isinstance(data.get("categories"), list):
        return data  # the file's checks name what is wrong with it
    cats = [c for c in data["categories"] if isinstance(c, dict)]
    have = [str(c.get("name")) for c in cats]
    missing = [n for n in names if n not in have]
    if missing:
        near = {n: difflib.get_close_matches(n, have, n=2) for n in missing}
        hints = "; ".join(f"{n!r}: nearest {', '.join(v)}" for n, v in near.items() if v)
        raise DatasetError(
            f"{ann_file}: the kept classes {missing} are not categories of this file"
            + (f" ({hints})" if hints else "")
            + f"; its categories: {have[:20]}{' ...' if len(have) > 20 else ''}"
        )
    kept = [c for c in cats if str(c.get("name")) in names]
    dropped = {c.get("id") for c in cats} - {c.get("id") for c in kept}
    if not isinstance(data.get("annotations"), list):
        return {**data, "categories": kept}
    anns = [
        a
        for a in data["annotations"]
        if not (isinstance(a, dict) and is_key(a.get("category_id")) and a["category_id"] in dropped)
    ]  # (a list id is in no set: the file's checks report it)
    return {**data, "categories": kept, "annotations": anns}
