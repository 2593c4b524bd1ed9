"""Pascal VOC XML -> COCO (VOC boxes are 1-based and inclusive: ``x0 = xmin - 1``, ``x1 = xmax``)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from detkit.data.converters.common import (
    IMAGE_EXTS,
    DatasetError,
    ProblemHandler,
    categories_from_names,
    image_size,
    plain_name,
    require_dir,
    safe_relpath,
)

__all__ = ["coco_from_voc_records", "find_image", "image_index", "voc_record", "voc_to_coco"]


def _xml_text(node: ET.Element, tag: str, where: str, required: bool = True) -> str | None:
    child = node.find(tag)  # direct children only: <part> boxes of person layout are not matched
    if child is None or child.text is None or not child.text.strip():
        if required:
            raise DatasetError(
                f"{where}: missing <{tag}>; every VOC <object> needs <name> and "
                f"<bndbox> with <xmin>, <ymin>, <xmax>, <ymax>"
            )
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
            raise DatasetError(
                f"{xml_path}: <size> says {w}x{h} (w x h) but {img_path} is {iw}x{ih}; "
                f"fix <size> or use the matching image"
            )
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
    x0, y0, x1, y1 = xmin - 1, ymin - 1, xmax, ymax  # 1-based inclusive -> continuous
    cx0, cy0, cx1, cy1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(w)), min(y1, float(h))
    if cx1 <= cx0 or cy1 <= cy0:
        raise DatasetError(
            f"{where}: box xmin={xmin:g} ymin={ymin:g} xmax={xmax:g} ymax={ymax:g} is empty "
            f"inside the {w}x{h} image; VOC boxes are 1-based with xmin <= xmax"
        )
    clipped = (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1)
    return name, [cx0, cy0, cx1 - cx0, cy1 - cy0], int(difficult != 0), clipped


def image_index(img_dir: Path) -> dict[tuple[str, str], list[str]]:
    """Image files under ``img_dir`` by (relative folder, stem): ``{("", "000001"): ["000001.png"]}``."""
    index: dict[tuple[str, str], list[str]] = {}
    for p in sorted(img_dir.rglob("*")):
        if p.suffix.lower() in IMAGE_EXTS and p.is_file():
            rel = p.relative_to(img_dir)
            index.setdefault((rel.parent.as_posix(), rel.stem), []).append(rel.as_posix())
    return index


def find_image(fname: str, img_dir: Path, index: dict, xml_path: Path) -> str | None:
    """The image of an XML: ``fname`` itself, else the one image with its stem (another extension); None if none.

    Raises DatasetError when several images share the stem (``a.png`` and ``a.jpg``): which one is meant
    cannot be told.
    """
    if (img_dir / fname).is_file():
        return fname
    rel = Path(fname)
    found = index.get((rel.parent.as_posix(), rel.stem), [])
    if len(found) > 1:
        raise DatasetError(
            f"{xml_path}: <filename> {fname} is not in {img_dir}, and several images have its stem "
            f"({', '.join(found)}); fix <filename> or remove the extra image"
        )
    return found[0] if found else None


def voc_record(
    xml_path: Path,
    img_dir: Path,
    index: dict,
    stats: dict,
    keep_missing: bool = False,
    on_problem: ProblemHandler | None = None,
) -> tuple | None:
    """(file name, h, w, objects, xml path) of one XML; None when its image is missing and not ``keep_missing``.

    Objects are ``(name, COCO bbox, difficult, clipped)``. A bad object raises :class:`DatasetError`, or, with
    ``on_problem``, is passed to it (``'annotation'``) and left out. ``index``: :func:`image_index` of ``img_dir``.
    """
    root = _parse_voc_xml(xml_path)
    named = safe_relpath(_xml_text(root, "filename", str(xml_path), False) or xml_path.stem + ".jpg", str(xml_path))
    fname = find_image(named, img_dir, index, xml_path)
    if fname is None:
        stats["missing_image_files"].append(f"{xml_path.name} ({named})")
        if not keep_missing:
            return None
        fname = named
    elif fname != named:
        stats["matched_by_stem"] += 1
        stats["stem_matches"].append(f"{xml_path.name}: {named} -> {fname}")
    h, w = _voc_image_size(root, xml_path, img_dir / fname)
    objs = []
    for k, o in enumerate(root.findall("object")):
        try:
            objs.append(_voc_object(o, f"{xml_path} object #{k}", h, w))
        except DatasetError as e:
            if on_problem is None:
                raise
            on_problem("annotation", e)
    return fname, h, w, objs, xml_path


def voc_to_coco(
    ann_dir: str | os.PathLike, img_dir: str | os.PathLike, classes: list[str] | None = None, keep_missing: bool = False
) -> tuple[dict, dict]:
    """Convert a folder of Pascal VOC XML files to a COCO dict.

    Args: ann_dir: folder of ``*.xml``; img_dir: their images (``<filename>`` is relative to it; when that
    file is absent, the one image with the same stem and another extension is taken: the XML names
    ``a.jpg``, the folder holds ``a.png``); classes: class names in category-id order (ids 1..C); default:
    names found in the XML, sorted; keep_missing: list XML files whose image is missing anyway (with the
    XML's ``<size>``) instead of leaving them out.
    Returns: (coco dict, stats dict). ``difficult`` objects stay annotations with ``"difficult": 1``.
    Counts: ``missing_images`` (XML files without an image), ``matched_by_stem``; lists (for messages):
    ``missing_image_files`` (``'a.xml (a.jpg)'``), ``stem_matches`` (``'a.xml: a.jpg -> a.png'``).
    """
    ann_dir = require_dir(ann_dir, "--ann-dir", "annotation folder")
    img_dir = require_dir(img_dir, "--img-dir", "image folder")
    xmls = sorted(ann_dir.glob("*.xml"))
    if not xmls:
        raise DatasetError(f"--ann-dir {ann_dir}: no .xml files; point --ann-dir at the VOC 'Annotations' folder")
    index = image_index(img_dir)
    stats = {
        "images": 0,
        "annotations": 0,
        "difficult": 0,
        "clipped": 0,
        "missing_images": 0,
        "matched_by_stem": 0,
        "missing_image_files": [],
        "stem_matches": [],
    }
    records = [r for r in (voc_record(x, img_dir, index, stats, keep_missing) for x in xmls) if r is not None]
    stats["missing_images"] = len(stats["missing_image_files"])
    if not records:
        raise DatasetError(
            f"--img-dir {img_dir}: none of the {len(xmls)} XML files has its image there "
            f"(e.g. {stats['missing_image_files'][0]}); check --img-dir"
        )
    return coco_from_voc_records(records, classes, ann_dir, stats), stats


def coco_from_voc_records(
    records: list[tuple],
    classes: list[str] | None,
    ann_dir: Path,
    stats: dict,
    on_problem: ProblemHandler | None = None,
) -> dict:
    """The COCO dict of :func:`voc_record` results; ``classes`` default: the object names, sorted.

    An object of a class not in ``classes`` raises :class:`DatasetError`, or with ``on_problem`` is reported
    (``'annotation'``) and left out. ``stats`` gets the counts (images, annotations, difficult, clipped, classes).
    """
    names = classes if classes is not None else sorted({o[0] for r in records for o in r[3]})
    cat_id = {n: i + 1 for i, n in enumerate(names)}
    images, anns = [], []
    for image_id, (fname, h, w, objs, xml_path) in enumerate(records, start=1):
        images.append({"id": image_id, "file_name": fname, "width": w, "height": h})
        for name, bbox, difficult, clipped in objs:
            if name not in cat_id:
                error = DatasetError(
                    f"{xml_path}: object class '{name}' is not in the class list {names}; add it to the classes (file or list)"
                )
                if on_problem is None:
                    raise error
                on_problem("annotation", error)
                continue
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": cat_id[name],
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                    "segmentation": [],
                    "difficult": difficult,
                }
            )
            stats["difficult"] += difficult
            stats["clipped"] += clipped
    stats.update(images=len(images), annotations=len(anns), classes=len(names))
    return {
        "info": {"description": f"converted from Pascal VOC ({ann_dir.name}) by detkit"},
        "licenses": [],
        "images": images,
        "annotations": anns,
        "categories": categories_from_names(names),
    }


# ----------------------------------------------------------------------------- COCO -> VOC


def _xml_child(parent: ET.Element, tag: str, text: str | int) -> ET.Element:
    child = ET.SubElement(parent, tag)
    child.text = str(text)
    return child


def _voc_xml(file_name: str, h: int, w: int, objects: list[tuple[str, list[int], int]]) -> str:
    """The text of one VOC XML: ``objects`` as ``(name, [xmin, ymin, xmax, ymax] 1-based inclusive, difficult)``."""
    root = ET.Element("annotation")
    _xml_child(root, "folder", "JPEGImages")
    _xml_child(root, "filename", file_name)
    size = ET.SubElement(root, "size")
    for tag, v in (("width", w), ("height", h), ("depth", 3)):
        _xml_child(size, tag, v)
    _xml_child(root, "segmented", 0)
    for name, box, difficult in objects:
        obj = ET.SubElement(root, "object")
        for tag, v in (("name", name), ("pose", "Unspecified"), ("truncated", 0), ("difficult", difficult)):
            _xml_child(obj, tag, v)
        bndbox = ET.SubElement(obj, "bndbox")
        for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), box):
            _xml_child(bndbox, tag, v)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _voc_box(bbox: list[float], h: int, w: int) -> list[int] | None:
    """COCO ``[x, y, w, h]`` -> VOC ``[xmin, ymin, xmax, ymax]`` (1-based, inclusive, whole pixels, in the image)."""
    x, y, bw, bh = bbox
    x0, y0 = max(round(x), 0), max(round(y), 0)
    x1, y1 = min(round(x + bw), w), min(round(y + bh), h)
    return [x0 + 1, y0 + 1, x1, y1] if x1 > x0 and y1 > y0 else None


def coco_to_voc(coco: dict, source: str = "annotation file", prefix: str = "") -> tuple[dict[str, dict], dict]:
    """Convert a COCO dict to VOC records: ``{image id (the XML stem): {"file_name", "image", "xml"}}``.

    The VOC id of an image is ``prefix`` + its ``file_name`` without extension, ``/`` turned into ``_``; the
    image keeps its extension (``<filename>`` = id + extension; ``image`` is the COCO ``file_name``). Boxes are
    rounded to whole pixels (VOC coordinates are integers) and clipped to the image; crowd annotations and
    those with ``"difficult": 1`` are written as ``difficult`` objects. ``prefix`` may hold no ``/``, ``\\`` or
    ``..`` (a DatasetError, a ValueError, names it): the id is a file name inside the VOC folder.
    Returns: (records, stats).
    """
    plain_name(prefix, "prefix", "it starts every image id", "val_", empty_ok=True)
    names = {c["id"]: str(c["name"]) for c in coco.get("categories", [])}
    if not names:
        raise DatasetError(f"{source}: no 'categories'; a COCO file must list its categories")
    objects: dict = {im["id"]: [] for im in coco.get("images", [])}
    stats = {"difficult": 0, "empty_skipped": 0, "rounded": 0}
    sizes = {im["id"]: (int(im["height"]), int(im["width"])) for im in coco.get("images", [])}
    for ann in coco.get("annotations", []):
        if ann.get("image_id") not in objects or ann.get("category_id") not in names:
            raise DatasetError(
                f"{source}: annotation id {ann.get('id')} refers to an unknown image_id {ann.get('image_id')} or "
                f"category_id {ann.get('category_id')}"
            )
        box = _voc_box(ann["bbox"], *sizes[ann["image_id"]])
        if box is None:
            stats["empty_skipped"] += 1
            continue
        stats["rounded"] += any(float(v) != int(v) for v in ann["bbox"])
        difficult = int(bool(ann.get("iscrowd", 0) or ann.get("difficult", 0)))
        stats["difficult"] += difficult
        objects[ann["image_id"]].append((names[ann["category_id"]], box, difficult))
    records: dict[str, dict] = {}
    for im in coco.get("images", []):
        rel = Path(safe_relpath(im["file_name"], f"{source} image id {im['id']}"))
        voc_id = prefix + rel.with_suffix("").as_posix().replace("/", "_")
        if voc_id in records:
            raise DatasetError(
                f"{source}: images {records[voc_id]['image']!r} and {im['file_name']!r} both become VOC id "
                f"{voc_id!r}; rename one"
            )
        h, w = sizes[im["id"]]
        fname = voc_id + rel.suffix
        records[voc_id] = {"file_name": fname, "image": rel.as_posix(), "xml": _voc_xml(fname, h, w, objects[im["id"]])}
    stats.update(images=len(records), objects=sum(len(v) for v in objects.values()), classes=len(names))
    return records, stats
