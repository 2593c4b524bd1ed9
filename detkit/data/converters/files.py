"""File-level entry points of ``tools/convert_dataset.py``: check the paths, convert, write the outputs atomically.

Inputs are checked before any work, outputs before they are written: an output is none of the inputs
(nothing the user gave is modified), and one that cannot be written stops the command. Bad input raises
:class:`DatasetError` naming the option and the path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from detkit.data.converters.common import (
    DatasetError,
    check_output,
    check_output_kind,
    list_images,
    read_class_names,
    require_dir,
    write_outputs,
)
from detkit.data.converters.voc import voc_to_coco
from detkit.data.converters.yolo import coco_to_yolo, yolo_to_coco
from detkit.data.validate import format_problems, load_coco_json, problem_list, validate_coco

__all__ = ["convert_coco_to_yolo", "convert_voc", "convert_yolo"]


def _load_coco(path: Path, img_dir: Path, segments: bool) -> dict:
    """The COCO dict of ``path``, refused (first problems named) when coco2yolo could not convert it."""
    if not path.is_file():
        state = "is a folder, not a COCO json file" if path.is_dir() else "not found"
        raise DatasetError(f"--ann-file {path}: annotation file {state}")
    coco = load_coco_json(path)
    problems = validate_coco(coco, img_dir, path, check_files=False, check_segmentation=segments)
    errors = [p for p in problem_list(problems) if p.kind != "no_segmentation"]  # a box becomes a 4-point polygon
    if errors:
        raise DatasetError(
            f"--ann-file {path}: {len(errors)} problem(s), e.g. {format_problems(errors[:1])}; "
            f"tools/check_dataset.py lists them all"
        )
    return coco


def convert_voc(
    ann_dir: str | os.PathLike,
    img_dir: str | os.PathLike,
    out: str | os.PathLike,
    classes_file: str | os.PathLike | None = None,
    keep_missing: bool = False,
) -> dict:
    """``voc2coco``: write the COCO json for a VOC folder to ``out``; returns stats (see ``voc_to_coco``)."""
    out = Path(out)
    check_output_kind(out, "--out")
    classes = read_class_names(classes_file) if classes_file else None
    coco, stats = voc_to_coco(ann_dir, img_dir, classes, keep_missing)
    inputs = [*Path(ann_dir).glob("*.xml"), *(Path(img_dir) / im["file_name"] for im in coco["images"])]
    check_output([out], inputs + ([Path(classes_file)] if classes_file else []), "--out")
    write_outputs({out: json.dumps(coco)}, "--out", out)
    return stats


def convert_yolo(
    label_dir: str | os.PathLike, img_dir: str | os.PathLike, classes_file: str | os.PathLike, out: str | os.PathLike
) -> dict:
    """``yolo2coco``: write the COCO json for YOLO labels to ``out``; returns stats."""
    out, label_dir = Path(out), Path(label_dir)
    check_output_kind(out, "--out")
    coco, stats = yolo_to_coco(label_dir, img_dir, read_class_names(classes_file))
    inputs = [
        Path(classes_file),
        *label_dir.rglob("*.txt"),
        *(Path(img_dir) / im["file_name"] for im in coco["images"]),
    ]
    check_output([out], inputs, "--out")
    write_outputs({out: json.dumps(coco)}, "--out", out)
    return stats


def convert_coco_to_yolo(
    ann_file: str | os.PathLike, img_dir: str | os.PathLike, out_dir: str | os.PathLike, segments: bool = False
) -> dict:
    """``coco2yolo``: write ``out_dir/labels/<name>.txt`` per image and ``out_dir/classes.txt``; returns stats.

    Images missing from ``img_dir`` are counted in ``stats['missing_images']`` (labels are still written).
    ``out_dir`` may not be ``img_dir`` or inside it (the labels would go into the input image folder).
    """
    ann_file, out_dir = Path(ann_file), Path(out_dir)
    img_dir = require_dir(img_dir, "--img-dir", "image folder")
    check_output_kind(out_dir, "--out-dir", folder=True)
    if out_dir.resolve() == img_dir.resolve() or img_dir.resolve() in out_dir.resolve().parents:
        raise DatasetError(
            f"--out-dir {out_dir} is inside --img-dir {img_dir}: the labels would be written into "
            f"the input image folder; choose another folder (e.g. {img_dir.parent / 'yolo'})"
        )
    coco = _load_coco(ann_file, img_dir, segments)
    labels, names, stats = coco_to_yolo(coco, segments, str(ann_file))
    outputs = [out_dir / "classes.txt", *(out_dir / "labels" / rel for rel in labels)]
    check_output(outputs, [ann_file, *list_images(img_dir)], "--out-dir")
    stats["missing_images"] = sum(not (img_dir / im["file_name"]).is_file() for im in coco["images"])
    texts = {out_dir / "labels" / rel: text for rel, text in labels.items()}
    write_outputs({**texts, out_dir / "classes.txt": "".join(n + "\n" for n in names)}, "--out-dir", out_dir)
    return stats
