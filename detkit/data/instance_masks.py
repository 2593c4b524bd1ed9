"""Instance masks of COCO annotations: decoding (pycocotools) and the checks that make decoding safe.

``CocoDataset`` decodes with :func:`ann_to_mask`. Before that, :func:`segmentation_problem` (cheap, no
decoding: run on every annotation when a dataset is built) refuses what pycocotools would misread or
crash on: an empty or malformed entry, polygons of fewer than 3 points or an odd number of coordinates
(pycocotools reads 4 numbers as a box and drops an odd last one), non-finite or far-away coordinates
(pycocotools allocates memory in proportion to them), RLE whose size is not the image's or whose
uncompressed counts do not add up to it (the decoded mask would hold uninitialised memory).
:func:`decode_mask` decodes and refuses what would decode wrongly (``CocoDataset`` reads every mask with
it); :func:`mask_problem` reports on it (``tools/check_dataset.py`` runs it on every annotation).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

__all__ = [
    "ann_to_mask",
    "box_mask_mismatch",
    "decode_mask",
    "degenerate_part_note",
    "has_segmentation",
    "mask_problem",
    "rle_string_total",
    "segmentation_problem",
    "without_degenerate_parts",
]

NO_MASKS = "train without masks (with_masks=False)"
FIX = f"fix the segmentation, or {NO_MASKS}"


def ann_to_mask(ann: dict, h: int, w: int) -> np.ndarray:
    """Decode one annotation's polygons, uncompressed or compressed RLE into ``uint8 [h, w]`` (0/1)."""
    seg = ann["segmentation"]
    if isinstance(seg, list):  # polygons: one object may have several parts (degenerate ones left out)
        rle = mask_utils.merge(mask_utils.frPyObjects(_usable_parts(seg), h, w))
    elif isinstance(seg["counts"], list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(seg, *seg["size"])
    else:
        rle = seg
    return mask_utils.decode(rle)


def has_segmentation(ann: Any) -> bool:
    """Whether an annotation carries a non-empty ``segmentation`` (polygons or RLE)."""
    return isinstance(ann, dict) and bool(ann.get("segmentation"))


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _degenerate(part: Any) -> bool:
    """A polygon part of fewer than 3 points (but x, y pairs of finite numbers): a stray click of an annotation
    tool. pycocotools would read a 2-point part (4 numbers) as a box."""
    return isinstance(part, list) and len(part) < 6 and not len(part) % 2 and all(_finite(v) for v in part)


def _usable_parts(seg: list) -> list:
    """The parts of a polygon segmentation without its degenerate ones, when it has another part; else as is."""
    kept = [p for p in seg if not _degenerate(p)]
    return kept if kept else seg


def degenerate_part_note(seg: Any) -> str | None:
    """A warning when some parts (not all) of a polygon segmentation have fewer than 3 points, else None."""
    if not isinstance(seg, list) or len(_usable_parts(seg)) in (0, len(seg)):
        return None
    bad = [k for k, p in enumerate(seg) if _degenerate(p)]
    return (
        f"polygon part(s) #{', #'.join(map(str, bad))} have fewer than 3 points: left out of the mask (pycocotools "
        f"would read a 2-point part as a box); the other {len(seg) - len(bad)} part(s) make it. Fix the "
        "segmentation to silence this"
    )


def without_degenerate_parts(data: dict) -> tuple[dict, int]:
    """A copy of the COCO dict ``data`` whose polygon segmentations lack their degenerate parts (when they have
    another part: see :func:`degenerate_part_note`), and how many annotations changed."""
    anns, changed = [], 0
    for a in data.get("annotations") or []:
        seg = a.get("segmentation") if isinstance(a, dict) else None
        if isinstance(seg, list) and seg and len(_usable_parts(seg)) != len(seg):
            a, changed = {**a, "segmentation": _usable_parts(seg)}, changed + 1
        anns.append(a)
    return ({**data, "annotations": anns} if changed else data), changed


def _polygon_problem(seg: list, h: float, w: float, max_outside: float) -> tuple[str, str] | None:
    if not seg:
        return (
            "no_segmentation",
            f"segmentation is an empty list (no mask); add the object's polygon or RLE, or {NO_MASKS}",
        )
    seg = _usable_parts(seg)  # degenerate parts beside good ones: a warning (degenerate_part_note), not an error
    for k, part in enumerate(seg):
        if not isinstance(part, list) or not all(_finite(v) for v in part):
            return (
                "bad_polygon",
                f"polygon #{k} {str(part)[:40]} is not a list of finite numbers [x1, y1, x2, y2, ...]; {FIX}",
            )
        if len(part) % 2:
            return "bad_polygon", (
                f"polygon #{k} has an odd number of coordinates ({len(part)}); a polygon is x, y pairs: {FIX}"
            )
        if len(part) < 6:
            return "bad_polygon", f"polygon #{k} has {len(part) // 2} point(s), a polygon needs 3 or more; {FIX}"
    xy = np.concatenate([np.asarray(p, np.float64).reshape(-1, 2) for p in seg])
    (x0, y0), (x1, y1) = xy.min(0), xy.max(0)
    mx, my = max_outside * w, max_outside * h
    if x0 < -mx or y0 < -my or x1 > w + mx or y1 > h + my:
        return "polygon_outside", (
            f"polygon points span x {x0:g}..{x1:g}, y {y0:g}..{y1:g}, beyond the {w:g}x{h:g} "
            f"image (more than {max_outside:.0%} of its size); polygons are in pixels of "
            f"this image: {FIX}"
        )
    return None


def _rle_problem(seg: dict, h: float, w: float) -> tuple[str, str] | None:
    size, counts = seg.get("size"), seg.get("counts")
    if size is None or counts is None:
        return "bad_rle", f"RLE {str(seg)[:40]} lacks 'size' [height, width] or 'counts'; {FIX}"
    if not (isinstance(size, list) and len(size) == 2 and all(_int(v) and v > 0 for v in size)):
        return "bad_rle", f"RLE size {size!r} is not [height, width] in pixels; {FIX}"
    if size != [h, w]:
        return "rle_size", (
            f"RLE size {size} ([height, width]) differs from the image's [{h:g}, {w:g}]; write "
            f"the mask at the image size, or fix the image's width/height"
        )
    if isinstance(counts, list):
        if not all(_int(c) and c >= 0 for c in counts):
            return "bad_rle", f"uncompressed RLE counts must be non-negative integers; {FIX}"
        if sum(counts) != size[0] * size[1]:
            return "bad_rle", (
                f"uncompressed RLE counts add up to {sum(counts)} pixels, not {size[0]}x{size[1]} = "
                f"{size[0] * size[1]}; {FIX}"
            )
    elif not isinstance(counts, str) or not counts:
        return "bad_rle", f"RLE counts {str(counts)[:20]!r} is neither a list of run lengths nor a string; {FIX}"
    return None


def segmentation_problem(seg: Any, h: float, w: float, max_outside: float = 0.1) -> tuple[str, str] | None:
    """``(kind, message)`` when ``seg`` is no segmentation that decodes safely at image size ``h x w``, else None.

    Structure only (no mask is decoded). Kinds: ``no_segmentation``, ``bad_segmentation``, ``bad_polygon``,
    ``polygon_outside`` (points beyond ``max_outside`` of the image size), ``bad_rle``, ``rle_size``.
    """
    if isinstance(seg, list):
        return _polygon_problem(seg, h, w, max_outside)
    if isinstance(seg, dict):
        return _rle_problem(seg, h, w)
    if seg is None:
        return "no_segmentation", f"the annotation has no segmentation; add its polygon or RLE, or {NO_MASKS}"
    return "bad_segmentation", f"segmentation {str(seg)[:40]!r} is neither polygons nor RLE {{size, counts}}; {FIX}"


def _mask_box(seg: Any, h: float, w: float) -> list[float] | None:
    """[x, y, width, height] of a (checked) segmentation's extent: its polygons' points, or its RLE's pixels."""
    if isinstance(seg, list):
        parts = _usable_parts(seg)
        xs = [v for poly in parts for v in poly[0::2]]
        ys = [v for poly in parts for v in poly[1::2]]
        return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)] if xs else None
    from pycocotools import mask as mask_utils

    rle = mask_utils.frPyObjects(seg, int(h), int(w)) if isinstance(seg.get("counts"), list) else seg
    box = [float(v) for v in mask_utils.toBbox(rle)]
    return box if box[2] > 0 and box[3] > 0 else None


def box_mask_mismatch(box: Any, seg: Any, h: float, w: float, min_iou: float = 0.5) -> str | None:
    """A message when an annotation's bbox and the extent of its (checked) mask overlap with IoU under
    ``min_iou``, else None: the two model families would learn different objects from it (R-CNN heads the
    json's box, YOLO-seg recipes the box shrunk to the mask, or nothing where they do not meet)."""
    if not seg:
        return None
    extent = _mask_box(seg, h, w)
    if extent is None or extent[2] < 1 or extent[3] < 1:  # an empty or normalised (0..1) mask: said as empty_mask
        return None
    iou = float(mask_utils.iou([[float(v) for v in box]], [extent], [0])[0][0])  # xywh boxes, pycocotools' IoU
    if iou >= min_iou:
        return None
    return (
        f"bbox {[round(float(v), 1) for v in box]} and its mask's extent {[round(v, 1) for v in extent]} overlap with "
        f"IoU {iou:.2f}: Mask R-CNN learns the json's box, YOLO-seg recipes the box shrunk to the mask (dropped "
        "where they do not meet); fix the box (or the mask) so that they agree"
    )


def rle_string_total(counts: str) -> int | None:
    """Pixels covered by compressed RLE ``counts`` (the sum of its runs); None when the string is malformed.

    Reads pycocotools' compressed format (``rleFrString``: LEB128-like 6-bit chunks from ``'0'``, runs after
    the second stored as differences), which pycocotools decodes without checking the total: a string
    cut short decodes into a mask whose tail is uninitialised memory.
    """
    runs: list[int] = []
    p = 0
    while p < len(counts):
        x, k, more = 0, 0, True
        while more:
            if p >= len(counts):
                return None
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        if x < 0:
            return None
        runs.append(x)
    return sum(runs)


def decode_mask(seg: Any, h: int, w: int) -> np.ndarray:
    """Decode a segmentation into a 0/1 ``uint8 [h, w]`` mask; ValueError saying why when it cannot be.

    Refused: RLE of another size, compressed counts that do not cover exactly ``h x w`` pixels
    (:func:`rle_string_total`), anything pycocotools cannot decode.
    """
    if isinstance(seg, dict) and isinstance(seg.get("size"), list) and seg["size"] != [h, w]:
        raise ValueError(f"its RLE size {seg['size']} ([height, width]) differs from the image's [{h}, {w}]")
    if isinstance(seg, dict) and isinstance(seg.get("counts"), str):
        total = rle_string_total(seg["counts"])
        if total != h * w:
            got = "cannot be read" if total is None else f"cover {total} pixels, not {h}x{w} = {h * w}"
            raise ValueError(f"its compressed RLE counts {got} (a cut or corrupt string?)")
    try:
        m = ann_to_mask({"segmentation": seg}, h, w)
    except (ValueError, TypeError, OverflowError, KeyError, IndexError) as e:
        raise ValueError(f"pycocotools cannot decode its segmentation ({e})") from e
    if m.shape != (h, w):
        raise ValueError(f"its mask decodes to {m.shape[1]}x{m.shape[0]} pixels, not the {w}x{h} image's")
    return m


def mask_problem(seg: Any, h: int, w: int) -> tuple[str, str] | None:
    """Decode a segmentation (:func:`decode_mask`, as ``CocoDataset`` does); report what the mask shows.

    ``bad_rle``: it cannot be decoded at ``h x w`` (training refuses it too); ``empty_mask``: no pixel
    inside the image (training keeps the object with an empty mask target: a warning).
    """
    try:
        area = int(decode_mask(seg, h, w).sum(dtype=np.int64))
    except ValueError as e:
        return "bad_rle", f"{e}; {FIX}"
    if area:
        return None
    hint = ""
    if isinstance(seg, list) and max(max(abs(v) for v in p) for p in seg) <= 1.0:
        hint = " (the coordinates are all <= 1: normalised? COCO polygons are in pixels)"
    return "empty_mask", f"the mask has no pixel inside the image{hint}; fix the segmentation or remove the object"
