"""``on_error: skip`` for COCO records: which images and annotations a list of problems drops."""

from __future__ import annotations

from collections import Counter

from detkit.data.coco_file import is_int, list_of
from detkit.data.problems import DatasetError, Problem, format_problems, problem_list

FILE_RECORDS = ("file", "category")  # problems no record can be dropped for: on_error='skip' raises on them

# annotation errors whose image stays: a duplicated id (its first record is kept), a box without area (no
# object to learn, as YOLO's zero-size lines are left out with a warning)
KEEP_IMAGE = ("duplicate_ann_id", "empty_box")


def drop_bad_records(data: dict, problems: list[Problem], whole_images: bool = True) -> tuple[dict, dict[str, Counter]]:
    """Return a copy of ``data`` without the images/annotations that have errors, and counts by kind.

    An image with a bad annotation goes too (counted as the image's ``bad_annotation``), as Ultralytics drops
    an image with a corrupt label line: kept, its object would be learnt (and scored) as background. The other
    annotations of dropped images go with them (counted as ``image_dropped``); of duplicated ids the first
    record stays. File- and category-level errors can't be dropped: they raise :class:`DatasetError`.
    ``whole_images=False`` keeps the images of bad annotations (where each annotation is a sample of its own).
    """
    errors = problem_list(problems)
    fatal = [p for p in errors if p.record in FILE_RECORDS]
    if fatal:
        raise DatasetError(format_problems(fatal, limit=5))
    bad = {
        "image": {p.index for p in errors if p.record == "image"},
        "annotation": {p.index for p in errors if p.record == "annotation"},
    }
    counts = {"image": Counter(), "annotation": Counter()}
    for p in errors:
        counts[p.record][p.kind] += 1
    annotations = list_of(data, "annotations")
    bad_objects = [(p.index, p.kind) for p in errors if p.record == "annotation" and p.index is not None]
    bad_objects = bad_objects if whole_images else []
    with_bad = {
        annotations[i]["image_id"]
        for i, kind in bad_objects
        if isinstance(annotations[i], dict) and is_int(annotations[i].get("image_id")) and kind not in KEEP_IMAGE
    }
    images = []
    for i, im in enumerate(list_of(data, "images")):
        if i in bad["image"]:
            continue
        if isinstance(im, dict) and is_int(im.get("id")) and im["id"] in with_bad:
            counts["image"]["bad_annotation"] += 1
            continue
        images.append(im)
    keep_ids = {im["id"] for im in images}
    anns = []
    for i, a in enumerate(annotations):
        if i in bad["annotation"]:
            continue
        if a["image_id"] not in keep_ids:
            counts["annotation"]["image_dropped"] += 1
            continue
        anns.append(a)
    return {**data, "images": images, "annotations": anns}, counts
