"""Pascal VOC XML -> COCO (VOC boxes are 1-based and inclusive: ``x0 = xmin - 1``, ``x1 = xmax``)."""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from detkit.data.converters.common import DatasetError, _categories, _safe_relpath, image_size

__all__ = ["voc_to_coco"]


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
