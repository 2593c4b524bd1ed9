"""Training on a subset of a COCO file's categories (MMDetection's ``metainfo.classes``): ``CocoDataset(classes=)``."""

from __future__ import annotations

from collections.abc import Sequence

from detkit.data.coco_file import is_key
from detkit.data.validate import DatasetError
from detkit.utils.class_names import ClassNameError, class_indices


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


def _kept_indices(names: Sequence[str], have: Sequence[str], ann_file: str) -> set[int]:
    """The indices into the file's category names ``have`` of the kept ``names`` (any case:
    :func:`detkit.utils.class_names.class_indices`); unknown names, or two names of one category, are a
    DatasetError naming the nearest categories."""
    found: dict[str, list[int]] = {}
    unknown: list[tuple[str, ClassNameError]] = []
    for name in names:
        try:
            found[name] = class_indices(name, have, owner="this file", indices=False)
        except ClassNameError as e:
            unknown.append((name, e))
    if unknown:
        hints = "; ".join(f"{n!r}: nearest {', '.join(e.nearest)}" for n, e in unknown if e.nearest)
        raise DatasetError(
            f"{ann_file}: the kept classes {[n for n, _ in unknown]} are not categories of this file"
            + (f" ({hints})" if hints else "")
            + f"; its categories: {list(have[:20])}{' ...' if len(have) > 20 else ''}"
        )
    seen: dict[int, str] = {}
    for name, indices in found.items():
        twice = next((seen[i] for i in indices if i in seen), None)
        if twice is not None:
            raise DatasetError(
                f"{ann_file}: the kept classes {twice!r} and {name!r} name the same category ({have[indices[0]]!r}; "
                "names match in any case); list each category once"
            )
        seen.update(dict.fromkeys(indices, name))
    return set(seen)


def keep_categories(data: dict, names: Sequence[str], ann_file: str) -> dict:
    """A copy of the COCO dict ``data`` with only the categories named in ``names`` (in any case) and their
    annotations (the images all stay); a name the file lacks is a DatasetError with the nearest category names."""
    if not isinstance(data.get("categories"), list):
        return data  # the file's checks name what is wrong with it
    cats = [c for c in data["categories"] if isinstance(c, dict)]
    have = [str(c.get("name")) for c in cats]
    keep = _kept_indices(names, have, ann_file)
    kept = [c for i, c in enumerate(cats) if i in keep]
    dropped = {c.get("id") for c in cats} - {c.get("id") for c in kept}
    if not isinstance(data.get("annotations"), list):
        return {**data, "categories": kept}
    anns = [
        a
        for a in data["annotations"]
        if not (isinstance(a, dict) and is_key(a.get("category_id")) and a["category_id"] in dropped)
    ]  # (a list id is in no set: the file's checks report it)
    return {**data, "categories": kept, "annotations": anns}
