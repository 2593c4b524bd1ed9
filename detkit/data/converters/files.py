"""File-level entry points of ``tools/convert_dataset.py``: check the paths, convert, write the outputs atomically.

Inputs are checked before any work, outputs before they are written: an output is none of the inputs
(nothing the user gave is modified), and one that cannot be written stops the command. Bad input raises
:class:`DatasetError` naming the option and the path.
"""

from __future__ import annotations

import json
import os
import shutil
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
from detkit.data.converters.voc import coco_to_voc, voc_to_coco
from detkit.data.converters.yolo import coco_to_yolo, yolo_to_coco
from detkit.data.validate import format_problems, load_coco_json, problem_list, validate_coco

__all__ = ["convert_coco_to_voc", "convert_coco_to_yolo", "convert_voc", "convert_yolo"]


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


def _out_dir_outside(out_dir: Path, img_dir: Path, example: str) -> None:
    """Refuse an ``--out-dir`` that is ``--img-dir`` or lies inside it (the outputs would go into the input)."""
    if out_dir.resolve() == img_dir.resolve() or img_dir.resolve() in out_dir.resolve().parents:
        raise DatasetError(
            f"--out-dir {out_dir} is inside --img-dir {img_dir}: the outputs would be written into "
            f"the input image folder; choose another folder (e.g. {img_dir.parent / example})"
        )


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
    _out_dir_outside(out_dir, img_dir, "yolo")
    coco = _load_coco(ann_file, img_dir, segments)
    labels, names, stats = coco_to_yolo(coco, segments, str(ann_file))
    outputs = [out_dir / "classes.txt", *(out_dir / "labels" / rel for rel in labels)]
    check_output(outputs, [ann_file, *list_images(img_dir)], "--out-dir")
    stats["missing_images"] = sum(not (img_dir / im["file_name"]).is_file() for im in coco["images"])
    texts = {out_dir / "labels" / rel: text for rel, text in labels.items()}
    write_outputs({**texts, out_dir / "classes.txt": "".join(n + "\n" for n in names)}, "--out-dir", out_dir)
    return stats


def convert_coco_to_voc(
    ann_file: str | os.PathLike,
    img_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    split: str | None = None,
    prefix: str = "",
) -> dict:
    """``coco2voc``: write a VOC folder: ``Annotations/<id>.xml``, ``JPEGImages/<id><ext>`` (the images, copied),
    ``ImageSets/Main/<split>.txt`` (default split: the json's stem) and ``classes.txt`` (category-id order).

    Nothing existing is overwritten: an output file that exists already is an error (a ``classes.txt`` with
    the same names is kept), so a second split (``--split val``) can be added to the same folder when its
    image names differ (``--prefix``). Returns stats (see ``coco_to_voc``).
    """
    ann_file, out_dir = Path(ann_file), Path(out_dir)
    img_dir = require_dir(img_dir, "--img-dir", "image folder")
    check_output_kind(out_dir, "--out-dir", folder=True)
    _out_dir_outside(out_dir, img_dir, "voc")
    coco = _load_coco(ann_file, img_dir, segments=False)
    records, stats = coco_to_voc(coco, str(ann_file), prefix)
    missing = [r["image"] for r in records.values() if not (img_dir / r["image"]).is_file()]
    if missing:
        raise DatasetError(
            f"--img-dir {img_dir}: {len(missing)} image(s) of {ann_file} are not there (e.g. {missing[0]}); "
            "a VOC folder holds its images: give the image folder of the json"
        )
    split = split or ann_file.stem
    names = "".join(c["name"] + "\n" for c in sorted(coco["categories"], key=lambda c: c["id"]))
    texts = {out_dir / "Annotations" / f"{i}.xml": r["xml"] for i, r in records.items()}
    texts[out_dir / "ImageSets" / "Main" / f"{split}.txt"] = "".join(i + "\n" for i in records)
    classes = out_dir / "classes.txt"
    if not classes.is_file() or classes.read_text(encoding="utf-8") != names:
        texts[classes] = names
    copies = {out_dir / "JPEGImages" / r["file_name"]: img_dir / r["image"] for r in records.values()}
    check_output([*texts, *copies], [ann_file, *copies.values()], "--out-dir")
    existing = [p for p in [*texts, *copies] if p.exists()]
    if existing:
        raise DatasetError(
            f"--out-dir {out_dir}: {len(existing)} output file(s) exist already (e.g. {existing[0]}); converters "
            "never overwrite: choose a new folder, another --split, or --prefix for other image names"
        )
    write_outputs(texts, "--out-dir", out_dir)
    (out_dir / "JPEGImages").mkdir(exist_ok=True)
    for dst, src in copies.items():
        tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)
    stats["split"] = split
    return stats
