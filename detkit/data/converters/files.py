"""File-level entry points of ``tools/convert_dataset.py``: read the inputs, convert, write the outputs atomically."""
from __future__ import annotations

import json
import os
from pathlib import Path

from detkit.data.converters.common import (DatasetError, _check_output, _write_text_atomic, read_class_names,
                                           write_json_atomic)
from detkit.data.converters.voc import voc_to_coco
from detkit.data.converters.yolo import coco_to_yolo, yolo_to_coco

__all__ = ["convert_voc", "convert_yolo", "convert_coco_to_yolo"]


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
