"""Dataset format converters: Pascal VOC XML -> COCO, YOLO txt -> COCO, COCO -> YOLO txt.

Conventions (docs/datasets.md):
- COCO boxes are ``[x, y, w, h]`` in continuous pixel coordinates (pixel i covers [i, i+1)).
- VOC boxes are 1-based and inclusive: ``x0 = xmin - 1, y0 = ymin - 1, x1 = xmax, y1 = ymax``.
- YOLO lines are ``class cx cy w h`` or ``class x1 y1 x2 y2 ...`` (a polygon), normalised to 0..1,
  class indices contiguous 0..C-1 in the order of ``classes.txt``.
Inputs are never modified; outputs are written to a temporary file and renamed into place.
Bad input raises :class:`DatasetError` with a message that names the file and the record.
"""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from pycocotools import mask as mask_utils

from detkit.data.validate import DatasetError   # one error type for every bad-dataset message

__all__ = ["DatasetError", "read_class_names", "image_size", "voc_to_coco", "yolo_to_coco", "coco_to_yolo",
           "convert_voc", "convert_yolo", "convert_coco_to_yolo", "write_json_atomic"]

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


# ----------------------------------------------------------------------------- helpers

def read_class_names(path: str | os.PathLike) -> list[str]:
    """Class names from a text file, one per line (blank lines ignored, duplicates rejected)."""
    p = Path(path)
    try:
        names = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{p}: cannot read class names ({e})") from e
    if not names:
        raise DatasetError(f"{p}: no class names; write one class name per line")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DatasetError(f"{p}: duplicate class names {dup}; each class must appear once")
    return names


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of an image file after EXIF orientation, read from its header (Pillow)."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except (OSError, UnidentifiedImageError) as e:
        raise DatasetError(f"{path}: cannot read image ({e}); is the file a valid image?") from e
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def write_json_atomic(obj: Any, path: str | os.PathLike) -> None:
    """Write ``obj`` as JSON to ``path`` through a temporary file + rename."""
    _write_text_atomic(Path(path), json.dumps(obj))


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _safe_relpath(name: str, where: str) -> str:
    """Reject file names that would escape the image folder (absolute paths, '..')."""
    p = Path(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not name.strip():
        raise DatasetError(f"{where}: image file name {name!r} must be a relative path inside the image folder")
    return p.as_posix()


def _check_output(out: Path, inputs: Iterable[Path]) -> None:
    for i in inputs:
        if out.exists() and i.exists() and out.resolve() == i.resolve():
            raise DatasetError(f"{out}: the output would overwrite an input; choose another output path")


def _categories(names: list[str]) -> list[dict]:
    return [{"id": i + 1, "name": n, "supercategory": "none"} for i, n in enumerate(names)]


def _list_images(img_dir: Path) -> list[Path]:
    if not img_dir.is_dir():
        raise DatasetError(f"{img_dir}: image folder not found")
    return sorted(p for p in img_dir.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())


# ----------------------------------------------------------------------------- VOC -> COCO

def _xml_text(node: ET.Element, tag: str, where: str, required: bool = True) -> str | None:
    child = node.find(tag)   # direct children only: <part> boxes of person layout are not matched
    if child is None or child.text is None or not child.text.strip():
        if required:
            raise DatasetError(f"{where}: missing <{tag}>; every VOC <object> needs <name> and "
                               f"<bndbox> with <xmin>, <ymin>, <xmax>, <ymax>")
        return None
    return child.text.strip()


def _parse_voc_xml(path: Path) -> ET.Element:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e})") from e
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise DatasetError(f"{path}: DOCTYPE/ENTITY declarations are not allowed in VOC annotations")
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as e:
        raise DatasetError(f"{path}: invalid XML ({e}); fix or remove this annotation file") from e
    if root.tag != "annotation":
        raise DatasetError(f"{path}: root element is <{root.tag}>, expected <annotation> (Pascal VOC)")
    return root


def _voc_image_size(root: ET.Element, xml_path: Path, img_path: Path | None) -> tuple[int, int]:
    """(h, w) from <size>, checked against the image file when it exists."""
    size = root.find("size")
    h = w = 0
    if size is not None:
        try:
            w = int(float(_xml_text(size, "width", str(xml_path), False) or 0))
            h = int(float(_xml_text(size, "height", str(xml_path), False) or 0))
        except ValueError as e:
            raise DatasetError(f"{xml_path}: <size> is not numeric ({e})") from e
    if img_path is not None and img_path.is_file():
        ih, iw = image_size(img_path)
        if h > 0 and w > 0 and (h, w) != (ih, iw):
            raise DatasetError(f"{xml_path}: <size> says {w}x{h} (w x h) but {img_path} is {iw}x{ih}; "
                               f"fix <size> or use the matching image")
        return ih, iw
    if h <= 0 or w <= 0:
        raise DatasetError(f"{xml_path}: no valid <size> and no image file to read it from")
    return h, w


def _voc_object(obj: ET.Element, where: str, h: int, w: int) -> tuple[str, list[float], int, bool]:
    """(name, COCO xywh bbox, difficult, clipped) of one <object>."""
    name = _xml_text(obj, "name", where)
    box = obj.find("bndbox")
    if box is None:
        raise DatasetError(f"{where}: <object> '{name}' has no <bndbox>")
    try:
        xmin, ymin, xmax, ymax = (float(_xml_text(box, t, where)) for t in ("xmin", "ymin", "xmax", "ymax"))
        difficult = int(float(_xml_text(obj, "difficult", where, False) or 0))
    except ValueError as e:
        raise DatasetError(f"{where}: non-numeric value in <bndbox>/<difficult> ({e})") from e
    x0, y0, x1, y1 = xmin - 1, ymin - 1, xmax, ymax        # 1-based inclusive -> continuous
    cx0, cy0, cx1, cy1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(w)), min(y1, float(h))
    if cx1 <= cx0 or cy1 <= cy0:
        raise DatasetError(f"{where}: box xmin={xmin:g} ymin={ymin:g} xmax={xmax:g} ymax={ymax:g} is empty "
                           f"inside the {w}x{h} image; VOC boxes are 1-based with xmin <= xmax")
    clipped = (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1)
    return name, [cx0, cy0, cx1 - cx0, cy1 - cy0], int(difficult != 0), clipped


def voc_to_coco(ann_dir: str | os.PathLike, img_dir: str | os.PathLike,
                classes: list[str] | None = None) -> tuple[dict, dict]:
    """Convert a folder of Pascal VOC XML files to a COCO dict.

    Args: ann_dir: folder of ``*.xml``; img_dir: their images (``<filename>`` is relative to it);
    classes: class names in category-id order (ids 1..C); default: names found in the XML, sorted.
    Returns: (coco dict, stats dict). ``difficult`` objects stay annotations with ``"difficult": 1``.
    """
    ann_dir, img_dir = Path(ann_dir), Path(img_dir)
    if not ann_dir.is_dir():
        raise DatasetError(f"{ann_dir}: annotation folder not found")
    xmls = sorted(ann_dir.glob("*.xml"))
    if not xmls:
        raise DatasetError(f"{ann_dir}: no .xml files; point --ann-dir at the VOC 'Annotations' folder")
    records = []
    stats = {"images": 0, "annotations": 0, "difficult": 0, "clipped": 0, "missing_images": 0}
    for xml_path in xmls:
        root = _parse_voc_xml(xml_path)
        fname = _xml_text(root, "filename", str(xml_path), False) or xml_path.stem + ".jpg"
        fname = _safe_relpath(fname, str(xml_path))
        img_path = img_dir / fname
        stats["missing_images"] += not img_path.is_file()
        h, w = _voc_image_size(root, xml_path, img_path)
        objs = [_voc_object(o, f"{xml_path} object #{k}", h, w) for k, o in enumerate(root.findall("object"))]
        records.append((fname, h, w, objs, xml_path))
    names = classes if classes is not None else sorted({o[0] for r in records for o in r[3]})
    cat_id = {n: i + 1 for i, n in enumerate(names)}
    images, anns = [], []
    for image_id, (fname, h, w, objs, xml_path) in enumerate(records, start=1):
        images.append({"id": image_id, "file_name": fname, "width": w, "height": h})
        for name, bbox, difficult, clipped in objs:
            if name not in cat_id:
                raise DatasetError(f"{xml_path}: object class '{name}' is not in the class list "
                                   f"{names}; add it to the --classes file")
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cat_id[name],
                         "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": 0, "segmentation": [],
                         "difficult": difficult})
            stats["difficult"] += difficult
            stats["clipped"] += clipped
    stats.update(images=len(images), annotations=len(anns), classes=len(names))
    coco = {"info": {"description": f"converted from Pascal VOC ({ann_dir.name}) by detkit"},
            "licenses": [], "images": images, "annotations": anns, "categories": _categories(names)}
    return coco, stats


# ----------------------------------------------------------------------------- YOLO -> COCO

def _yolo_line(tokens: list[str], where: str, num_classes: int, h: int,
               w: int) -> tuple[int, list[float], list | None]:
    """(class index, COCO bbox, polygon or None) of one YOLO label line."""
    try:
        cls_f = float(tokens[0])
        vals = np.array([float(t) for t in tokens[1:]], dtype=np.float64)
    except ValueError as e:
        raise DatasetError(f"{where}: non-numeric value ({e})") from e
    cls = int(cls_f)
    if cls != cls_f or not 0 <= cls < num_classes:
        raise DatasetError(f"{where}: class index {tokens[0]} is not an integer in 0..{num_classes - 1} "
                           f"(classes.txt has {num_classes} names)")
    if not np.isfinite(vals).all() or (vals < -0.01).any() or (vals > 1.01).any():
        raise DatasetError(f"{where}: coordinates must be normalised to 0..1 (YOLO format)")
    vals = vals.clip(0.0, 1.0)
    if len(vals) == 4:
        cx, cy, bw, bh = vals * [w, h, w, h]
        x0, y0 = max(cx - bw / 2, 0.0), max(cy - bh / 2, 0.0)
        x1, y1 = min(cx + bw / 2, float(w)), min(cy + bh / 2, float(h))
        return cls, [x0, y0, x1 - x0, y1 - y0], None
    if len(vals) < 6 or len(vals) % 2:
        raise DatasetError(f"{where}: expected 'class cx cy w h' or 'class x1 y1 x2 y2 x3 y3 ...' "
                           f"(an even number of at least 6 polygon coordinates), got {len(vals)} numbers")
    pts = vals.reshape(-1, 2) * [w, h]
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    return cls, [float(x0), float(y0), float(x1 - x0), float(y1 - y0)], [pts.reshape(-1).tolist()]


def _yolo_file(txt: Path, image_id: int, classes: list[str], h: int, w: int, first_id: int,
               stats: dict) -> list[dict]:
    """COCO annotations (ids from ``first_id``) of one YOLO label file."""
    try:
        lines = txt.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{txt}: cannot read ({e})") from e
    anns = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        cls, bbox, poly = _yolo_line(line.split(), f"{txt} line {n}", len(classes), h, w)
        if bbox[2] <= 0 or bbox[3] <= 0:
            stats["empty_boxes"] += 1
            continue
        area = bbox[2] * bbox[3]
        if poly:
            area = float(mask_utils.area(mask_utils.merge(mask_utils.frPyObjects(poly, h, w))))
            stats["polygons"] += 1
        anns.append({"id": first_id + len(anns), "image_id": image_id, "category_id": cls + 1, "bbox": bbox,
                     "area": area, "iscrowd": 0, "segmentation": poly or []})
    return anns


def yolo_to_coco(label_dir: str | os.PathLike, img_dir: str | os.PathLike,
                 classes: list[str]) -> tuple[dict, dict]:
    """Convert YOLO txt labels (boxes or polygons) to a COCO dict; category ids are 1..C.

    Each image under ``img_dir`` (recursively) takes its labels from ``label_dir/<relative path>.txt``;
    an image without a label file is a negative (no annotations). Sizes are read from the images.
    Returns: (coco dict, stats dict); ``stats['orphan_labels']`` counts label files without an image.
    """
    label_dir, img_dir = Path(label_dir), Path(img_dir)
    if not label_dir.is_dir():
        raise DatasetError(f"{label_dir}: label folder not found")
    images, anns, used = [], [], set()
    stats = {"negatives": 0, "polygons": 0, "empty_boxes": 0}
    for image_id, path in enumerate(_list_images(img_dir), start=1):
        rel = path.relative_to(img_dir)
        h, w = image_size(path)
        images.append({"id": image_id, "file_name": rel.as_posix(), "width": w, "height": h})
        txt = label_dir / rel.with_suffix(".txt")
        new = []
        if txt.is_file():
            used.add(txt.resolve())
            new = _yolo_file(txt, image_id, classes, h, w, len(anns) + 1, stats)
        stats["negatives"] += not new
        anns.extend(new)
    if not images:
        raise DatasetError(f"{img_dir}: no images ({', '.join(IMAGE_EXTS)})")
    stats["orphan_labels"] = sum(1 for t in label_dir.rglob("*.txt")
                                 if t.resolve() not in used and t.name != "classes.txt")
    stats.update(images=len(images), annotations=len(anns), classes=len(classes))
    coco = {"info": {"description": f"converted from YOLO labels ({label_dir.name}) by detkit"},
            "licenses": [], "images": images, "annotations": anns, "categories": _categories(classes)}
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
        p_rot = np.roll(p, -j, axis=0)                     # start the part at its nearest point
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


def coco_to_yolo(coco: dict, segments: bool = False,
                 source: str = "annotation file") -> tuple[dict[str, str], list[str], dict]:
    """Convert a COCO dict to YOLO label text.

    Returns: (``{relative label path: text}`` one entry per image (empty text for negatives),
    class names in category-id order (YOLO index = position), stats dict). Crowd annotations are
    skipped; with ``segments`` each annotation is written as a polygon line (its box as a 4-corner
    polygon when it has no segmentation).
    """
    cats = sorted(coco.get("categories", []), key=lambda c: c["id"])
    if not cats:
        raise DatasetError(f"{source}: no 'categories'; a COCO file must list its categories")
    index = {c["id"]: i for i, c in enumerate(cats)}
    images = {im["id"]: im for im in coco.get("images", [])}
    lines: dict[int, list[str]] = {i: [] for i in images}
    stats = {"crowd_skipped": 0, "empty_skipped": 0, "box_as_polygon": 0}
    for ann in coco.get("annotations", []):
        im = images.get(ann.get("image_id"))
        if im is None or ann.get("category_id") not in index:
            raise DatasetError(f"{source}: annotation id {ann.get('id')} refers to an unknown "
                               f"image_id {ann.get('image_id')} or category_id {ann.get('category_id')}")
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
        name = _safe_relpath(im["file_name"], f"{source} image id {image_id}")
        rel = Path(name).with_suffix(".txt").as_posix()
        if rel in labels:
            raise DatasetError(f"{source}: two images map to the same label file {rel}; file names must be unique")
        labels[rel] = "".join(ln + "\n" for ln in lines[image_id])
    stats.update(images=len(images), labels=sum(len(v) for v in lines.values()))
    return labels, [c["name"] for c in cats], stats


# ----------------------------------------------------------------------------- file-level entry points

def _load_coco(path: Path) -> dict:
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: cannot read COCO json ({e})") from e
    if not isinstance(coco, dict) or "images" not in coco:
        raise DatasetError(f"{path}: not a COCO annotation file (no 'images' list)")
    return coco


def convert_voc(ann_dir: str | os.PathLike, img_dir: str | os.PathLike, out: str | os.PathLike,
                classes_file: str | os.PathLike | None = None) -> dict:
    """``voc2coco``: write the COCO json for a VOC folder to ``out``; returns stats."""
    classes = read_class_names(classes_file) if classes_file else None
    coco, stats = voc_to_coco(ann_dir, img_dir, classes)
    _check_output(Path(out), Path(ann_dir).glob("*.xml"))
    write_json_atomic(coco, out)
    return stats


def convert_yolo(label_dir: str | os.PathLike, img_dir: str | os.PathLike, classes_file: str | os.PathLike,
                 out: str | os.PathLike) -> dict:
    """``yolo2coco``: write the COCO json for YOLO labels to ``out``; returns stats."""
    coco, stats = yolo_to_coco(label_dir, img_dir, read_class_names(classes_file))
    _check_output(Path(out), [Path(classes_file)])
    write_json_atomic(coco, out)
    return stats


def convert_coco_to_yolo(ann_file: str | os.PathLike, img_dir: str | os.PathLike, out_dir: str | os.PathLike,
                         segments: bool = False) -> dict:
    """``coco2yolo``: write ``out_dir/labels/<name>.txt`` per image and ``out_dir/classes.txt``; returns stats.

    Images missing from ``img_dir`` are counted in ``stats['missing_images']`` (labels are still written).
    """
    ann_file, img_dir, out_dir = Path(ann_file), Path(img_dir), Path(out_dir)
    coco = _load_coco(ann_file)
    labels, names, stats = coco_to_yolo(coco, segments, str(ann_file))
    stats["missing_images"] = sum(not (img_dir / im["file_name"]).is_file() for im in coco["images"])
    for rel, text in labels.items():
        _write_text_atomic(out_dir / "labels" / rel, text)
    _write_text_atomic(out_dir / "classes.txt", "".join(n + "\n" for n in names))
    return stats
