"""YOLO txt labels <-> COCO: ``class cx cy w h`` or ``class x1 y1 x2 y2 ...`` (polygon), normalised to 0..1."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from detkit.data.categories import CategoryIndex
from detkit.data.converters.common import (
    IMAGE_EXTS,
    DatasetError,
    ImageProblems,
    ProblemHandler,
    categories_from_names,
    image_size,
    list_images,
    require_dir,
    safe_relpath,
)

__all__ = ["coco_to_yolo", "yolo_label_annotations", "yolo_records", "yolo_to_coco"]


# ----------------------------------------------------------------------------- YOLO -> COCO


def _yolo_line(
    tokens: list[str], where: str, num_classes: int, h: int, w: int, names_from: str = "the class list"
) -> tuple[int, list[float], list | None]:
    """(class index, COCO bbox, polygon or None) of one YOLO label line; ``names_from`` names the class list."""
    try:
        cls_f = float(tokens[0])
        vals = np.array([float(t) for t in tokens[1:]], dtype=np.float64)
    except ValueError as e:
        raise DatasetError(f"{where}: non-numeric value ({e})") from e
    cls = int(cls_f)
    if cls != cls_f or not 0 <= cls < num_classes:
        raise DatasetError(
            f"{where}: class index {tokens[0]} is not an integer in 0..{num_classes - 1} "
            f"({names_from} has {num_classes} class name(s))"
        )
    if not np.isfinite(vals).all() or (vals < -0.01).any() or (vals > 1.01).any():
        raise DatasetError(f"{where}: coordinates must be normalised to 0..1 (YOLO format)")
    vals = vals.clip(0.0, 1.0)
    if len(vals) == 4:
        cx, cy, bw, bh = vals * [w, h, w, h]
        x0, y0 = max(cx - bw / 2, 0.0), max(cy - bh / 2, 0.0)
        x1, y1 = min(cx + bw / 2, float(w)), min(cy + bh / 2, float(h))
        return cls, [x0, y0, x1 - x0, y1 - y0], None
    if len(vals) < 6 or len(vals) % 2:
        raise DatasetError(
            f"{where}: expected 'class cx cy w h' or 'class x1 y1 x2 y2 x3 y3 ...' "
            f"(an even number of at least 6 polygon coordinates), got {len(vals)} numbers"
        )
    pts = vals.reshape(-1, 2) * [w, h]
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    return cls, [float(x0), float(y0), float(x1 - x0), float(y1 - y0)], [pts.reshape(-1).tolist()]


WarningHandler = Callable[[str, str], None]  # (kind, message): a line read but left out, or kept with a note

MIXED = (
    "a box line (class cx cy w h) among the polygon lines of a YOLO-seg label file: it has no mask, and Ultralytics "
    "ignores such a file ('labels mix segment and detection rows'); write the object as a polygon (its box as 4 "
    "corners: class x0 y0 x1 y0 x1 y1 x0 y1) or remove the line"
)
KEPT = (
    "a box line (class cx cy w h) among the polygon lines of a YOLO-seg label file: kept as a box without a mask "
    "(Ultralytics ignores such a file: 'labels mix segment and detection rows'); write it as a polygon"
)
NO_MASK = (
    "a box line (class cx cy w h) has no mask, and masks are asked for (with_masks or with_sem_seg); write the "
    "object as a polygon (class x1 y1 x2 y2 x3 y3 ...): a mask model needs polygon labels (boxes only train a "
    "detection config such as yolo_n_coco)"
)


def _read_label_lines(txt: Path) -> list[tuple[int, list[str]]]:
    """(line number, tokens) of the non-blank lines of a label file (UTF-8, a byte-order mark allowed)."""
    try:
        text = txt.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{txt}: cannot read ({e}); YOLO label files are UTF-8 text") from e
    return [(n, line.split()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def yolo_label_annotations(
    txt: Path,
    image_id: int,
    classes: list[str],
    h: int,
    w: int,
    first_id: int,
    stats: dict,
    on_problem: ProblemHandler | None = None,
    names_from: str = "the class list",
    on_warning: WarningHandler | None = None,
    masks: bool = False,
    refuse_mixed: bool = False,
) -> list[dict]:
    """COCO annotations (ids from ``first_id``) of one YOLO label file.

    A bad line raises :class:`DatasetError` naming the file and line, or, with ``on_problem``, is passed to it
    (``'annotation'``) and left out. A file that cannot be read always raises. ``names_from`` names where
    ``classes`` come from in the message of a class index out of range (e.g. ``--classes my_classes.txt``).
    A box line has no mask: with ``masks`` it is a bad line; in a file of polygon lines it is a bad line with
    ``refuse_mixed`` (Ultralytics ignores such a file), else kept as a box with a warning (``box_among_polygons``).
    Warnings go to ``on_warning(kind, message)``; left out with one (counted in ``stats``): a line equal to an
    earlier one (``duplicate_label``: Ultralytics removes duplicates too), a box of zero width or height
    (``empty_box``).
    """
    lines = _read_label_lines(txt)
    polygons = any(len(tokens) > 6 for _, tokens in lines)  # Ultralytics' test for a segment file
    anns, seen = [], {}
    for n, tokens in lines:
        where = f"{txt} line {n}"
        try:
            cls, bbox, poly = _yolo_line(tokens, where, len(classes), h, w, names_from)
            if poly is None and (masks or (polygons and refuse_mixed)):
                raise DatasetError(f"{where}: {MIXED if polygons else NO_MASK}")
            if poly is None and polygons:
                stats["box_among_polygons"] = stats.get("box_among_polygons", 0) + 1
                _warn(on_warning, "box_among_polygons", f"{where}: {KEPT}")
        except DatasetError as e:
            if on_problem is None:
                raise
            on_problem("annotation", e)
            continue
        if not _left_out(tokens, cls, bbox, where, seen, stats, on_warning, (h, w)):
            anns.append(_coco_annotation(first_id + len(anns), image_id, cls, bbox, poly, (h, w), stats))
    return anns


def _left_out(
    tokens: list[str],
    cls: int,
    bbox: list[float],
    where: str,
    seen: dict,
    stats: dict,
    on_warning: WarningHandler | None,
    size: tuple[int, int],
) -> bool:
    """Whether a valid line is left out with a warning: the same label as an earlier line of the file (compared
    as Ultralytics compares them: class and float32 values), or a box of zero width or height."""
    key = (cls, np.asarray([float(t) for t in tokens[1:]], np.float32).tobytes())
    if key in seen:
        stats["duplicate_labels"] = stats.get("duplicate_labels", 0) + 1
        _warn(
            on_warning, "duplicate_label", f"{where}: the same label as line {seen[key]}; removed (as Ultralytics does)"
        )
        return True
    seen[key] = where.rsplit(" ", 1)[-1]
    if bbox[2] <= 0 or bbox[3] <= 0:
        stats["empty_boxes"] = stats.get("empty_boxes", 0) + 1
        box = f"{bbox[2]:.3g} x {bbox[3]:.3g} px in the {size[1]}x{size[0]} image"
        _warn(on_warning, "empty_box", f"{where}: the box has zero width or height ({box}); left out, fix the line")
        return True
    return False


def _coco_annotation(
    ann_id: int, image_id: int, cls: int, bbox: list[float], poly: list | None, size: tuple[int, int], stats: dict
) -> dict:
    """The COCO record of one label line (category id ``cls + 1``; a polygon's area is its mask's)."""
    area = bbox[2] * bbox[3]
    if poly:
        area = float(mask_utils.area(mask_utils.merge(mask_utils.frPyObjects(poly, *size))))
        stats["polygons"] = stats.get("polygons", 0) + 1
    seg = poly or []
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": cls + 1,
        "bbox": bbox,
        "area": area,
        "iscrowd": 0,
        "segmentation": seg,
    }


def _warn(on_warning: WarningHandler | None, kind: str, message: str) -> None:
    if on_warning is not None:
        on_warning(kind, message)


def yolo_records(
    img_dir: Path,
    images: list[Path],
    label_of: Callable[[Path], Path],
    classes: list[str],
    on_problem: ProblemHandler | None = None,
    names_from: str = "the class list",
    on_warning: WarningHandler | None = None,
    masks: bool = False,
    refuse_mixed: bool = False,
) -> tuple[list[dict], list[dict], dict, set[Path]]:
    """COCO images and annotations of ``images`` (files under ``img_dir``), labels from ``label_of(image path)``.

    An image without a label file, or with an empty one, is a negative. Sizes are read from the images.
    With ``on_problem``, an image that cannot be read (or whose label file cannot) is reported as ``'image'``
    and left out, a bad line as ``'annotation'``; without, both raise :class:`DatasetError`.
    ``names_from`` names where ``classes`` come from; ``on_warning`` gets the lines left out with a warning,
    ``masks`` and ``refuse_mixed`` refuse box lines (see :func:`yolo_label_annotations`).
    Returns: (images, annotations, stats, the label files used (resolved)).
    """
    records, anns, used = [], [], set()
    stats = {"negatives": 0, "polygons": 0, "empty_boxes": 0, "duplicate_labels": 0, "box_among_polygons": 0}
    for path in images:
        labels = None if on_problem is None else ImageProblems(on_problem)  # an image with a bad line goes too
        txt = label_of(path)
        if txt.is_file():
            used.add(txt.resolve())
        try:
            h, w = image_size(path)
            new = []
            if txt.is_file():
                first = len(anns) + 1
                new = yolo_label_annotations(
                    txt,
                    len(records) + 1,
                    classes,
                    h,
                    w,
                    first,
                    stats,
                    labels,
                    names_from,
                    on_warning,
                    masks,
                    refuse_mixed,
                )
        except DatasetError as e:
            if on_problem is None:
                raise
            on_problem("image", e)
            continue
        if labels is not None and labels.flush(path):
            continue
        rel = path.relative_to(img_dir).as_posix()
        records.append({"id": len(records) + 1, "file_name": rel, "width": w, "height": h})
        stats["negatives"] += not new
        anns.extend(new)
    return records, anns, stats, used


def yolo_to_coco(
    label_dir: str | os.PathLike, img_dir: str | os.PathLike, classes: list[str], names_from: str = "the class list"
) -> tuple[dict, dict]:
    """Convert YOLO txt labels (boxes or polygons) to a COCO dict; category ids are 1..C.

    Each image under ``img_dir`` (recursively) takes its labels from ``label_dir/<relative path>.txt``;
    an image without a label file is a negative (no annotations). Sizes are read from the images.
    ``names_from`` names where ``classes`` come from in messages (e.g. ``classes file my_classes.txt``).
    Duplicated lines and boxes of zero size are left out, and box lines among polygon lines kept without a mask,
    with one warning per kind that names the first (counted in ``stats['duplicate_labels']``,
    ``stats['empty_boxes']`` and ``stats['box_among_polygons']``).
    Returns: (coco dict, stats dict); ``stats['orphan_labels']`` counts label files without an image.
    """
    label_dir, img_dir = require_dir(label_dir, "--label-dir", "label folder"), Path(img_dir)

    def label_of(path: Path) -> Path:
        return label_dir / path.relative_to(img_dir).with_suffix(".txt")

    notes: dict[str, list[str]] = {}
    images, anns, stats, used = yolo_records(
        img_dir,
        list_images(img_dir),
        label_of,
        classes,
        None,
        names_from,
        lambda k, m: notes.setdefault(k, []).append(m),
    )
    for found in notes.values():  # one warning per kind, naming the first line
        warnings.warn(found[0] + (f" (and {len(found) - 1} more like it)" if len(found) > 1 else ""), stacklevel=2)
    if not images:
        raise DatasetError(f"--img-dir {img_dir}: no images ({', '.join(IMAGE_EXTS)}); point it at the image folder")
    stats["orphan_labels"] = sum(
        1 for t in label_dir.rglob("*.txt") if t.resolve() not in used and t.name != "classes.txt"
    )
    stats.update(images=len(images), annotations=len(anns), classes=len(classes))
    coco = {
        "info": {"description": f"converted from YOLO labels ({label_dir.name}) by detkit"},
        "licenses": [],
        "images": images,
        "annotations": anns,
        "categories": categories_from_names(classes),
    }
    return coco, stats


# ----------------------------------------------------------------------------- COCO -> YOLO


def _fmt(v: float) -> str:
    s = f"{v:.8f}".rstrip("0").rstrip(".")
    return s if s not in ("", "-0") else "0"


def _merge_polygons(polys: list[np.ndarray]) -> np.ndarray:
    """Join the parts of a multi-polygon into one ring through zero-width bridges between nearest points.

    Args: polys list of float [K_i,2]. Returns float [K,2]. (Ultralytics' ``merge_multi_segment`` idea.)
    """
    out = polys[0]
    for p in polys[1:]:
        d = ((out[:, None, :] - p[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(int(d.argmin()), d.shape)
        p_rot = np.roll(p, -j, axis=0)  # start the part at its nearest point
        out = np.concatenate([out[: i + 1], p_rot, p_rot[:1], out[i:]], 0)
    return out


def _ann_polygon(ann: dict, h: int, w: int) -> np.ndarray | None:
    """One polygon float [K,2] for an annotation's segmentation (largest contour for RLE), or None."""
    seg = ann.get("segmentation")
    if isinstance(seg, list) and seg:
        polys = [np.asarray(p, np.float64).reshape(-1, 2) for p in seg if len(p) >= 6]
        return _merge_polygons(polys) if polys else None
    if isinstance(seg, dict):
        import cv2

        rle = mask_utils.frPyObjects(seg, h, w) if isinstance(seg.get("counts"), list) else seg
        m = mask_utils.decode(rle)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        contours = [c for c in contours if len(c) >= 3]
        if contours:
            return max(contours, key=cv2.contourArea).reshape(-1, 2).astype(np.float64) + 0.5
    return None


def coco_to_yolo(
    coco: dict, segments: bool = False, source: str = "annotation file"
) -> tuple[dict[str, str], list[str], dict]:
    """Convert a COCO dict to YOLO label text.

    Returns: (``{relative label path: text}`` one entry per image (empty text for negatives),
    class names in category-id order (YOLO index = position), stats dict). Crowd annotations are
    skipped; with ``segments`` each annotation is written as a polygon line (its box as a 4-corner
    polygon when it has no segmentation).
    """
    cats = CategoryIndex(coco.get("categories", []))
    if not cats:
        raise DatasetError(f"{source}: no 'categories'; a COCO file must list its categories")
    index = cats.cat_id_to_label
    images = {im["id"]: im for im in coco.get("images", [])}
    lines: dict[int, list[str]] = {i: [] for i in images}
    stats = {"crowd_skipped": 0, "empty_skipped": 0, "box_as_polygon": 0}
    for ann in coco.get("annotations", []):
        im = images.get(ann.get("image_id"))
        if im is None or ann.get("category_id") not in index:
            raise DatasetError(
                f"{source}: annotation id {ann.get('id')} refers to an unknown "
                f"image_id {ann.get('image_id')} or category_id {ann.get('category_id')}"
            )
        if ann.get("iscrowd", 0):
            stats["crowd_skipped"] += 1
            continue
        h, w = im["height"], im["width"]
        x, y, bw, bh = ann["bbox"]
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + bw, w), min(y + bh, h)
        if x1 <= x0 or y1 <= y0:
            stats["empty_skipped"] += 1
            continue
        cls = str(index[ann["category_id"]])
        if segments:
            poly = _ann_polygon(ann, h, w)
            if poly is None:
                poly = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)
                stats["box_as_polygon"] += 1
            norm = (poly / [w, h]).clip(0, 1).reshape(-1)
            lines[im["id"]].append(" ".join([cls] + [_fmt(v) for v in norm]))
        else:
            vals = ((x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h)
            lines[im["id"]].append(" ".join([cls] + [_fmt(v) for v in vals]))
    labels: dict[str, str] = {}
    for image_id, im in images.items():
        name = safe_relpath(im["file_name"], f"{source} image id {image_id}")
        rel = Path(name).with_suffix(".txt").as_posix()
        if rel in labels:
            raise DatasetError(f"{source}: two images map to the same label file {rel}; file names must be unique")
        labels[rel] = "".join(ln + "\n" for ln in lines[image_id])
    stats.update(images=len(images), labels=sum(len(v) for v in lines.values()))
    return labels, [c["name"] for c in cats.records], stats  # names as given: the dict may be unchecked
