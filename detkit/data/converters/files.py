"""File-level entry points of ``detkit convert``: check the paths, convert, write the outputs atomically.

Inputs are checked before any work, outputs before they are written: an output is none of the inputs
(nothing the user gave is modified), none exists already (converters never overwrite), and one that cannot
be written stops the command. Bad input raises :class:`DatasetError` naming the option and the path.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from detkit.data.categories import CategoryIndex
from detkit.data.converters.common import (
    DatasetError,
    check_output,
    check_output_kind,
    list_images,
    plain_name,
    read_class_names,
    refuse_existing,
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
            f"`detkit check {path} {img_dir}` lists them all"
        )
    return coco


NEW_FILE = "choose a new --out path, or remove the old file first"


def convert_voc(
    ann_dir: str | os.PathLike,
    img_dir: str | os.PathLike,
    out: str | os.PathLike,
    classes_file: str | os.PathLike | None = None,
    keep_missing: bool = False,
) -> dict:
    """``voc2coco``: write the COCO json for a VOC folder to ``out``; returns stats (see ``voc_to_coco``).

    ``out`` may not exist already (converters never overwrite) nor be one of the inputs.
    """
    out = Path(out)
    check_output_kind(out, "--out")
    check_output([out], [*Path(ann_dir).glob("*.xml"), *([Path(classes_file)] if classes_file else [])], "--out")
    refuse_existing([out], "--out", out, NEW_FILE)
    classes = read_class_names(classes_file) if classes_file else None
    coco, stats = voc_to_coco(ann_dir, img_dir, classes, keep_missing)
    write_outputs({out: json.dumps(coco)}, "--out", out)
    return stats


def convert_yolo(
    label_dir: str | os.PathLike, img_dir: str | os.PathLike, classes_file: str | os.PathLike, out: str | os.PathLike
) -> dict:
    """``yolo2coco``: write the COCO json for YOLO labels to ``out``; returns stats.

    ``out`` may not exist already (converters never overwrite) nor be one of the inputs.
    """
    out, label_dir = Path(out), Path(label_dir)
    check_output_kind(out, "--out")
    check_output([out], [Path(classes_file), *label_dir.rglob("*.txt")], "--out")
    refuse_existing([out], "--out", out, NEW_FILE)
    classes = read_class_names(classes_file)
    coco, stats = yolo_to_coco(label_dir, img_dir, classes, f"--classes {classes_file}")
    write_outputs({out: json.dumps(coco)}, "--out", out)
    return stats


def _out_dir_outside(out_dir: Path, img_dir: Path, example: str) -> None:
    """Refuse an ``--out-dir`` that is ``--img-dir`` or lies inside it (the outputs would go into the input)."""
    if out_dir.resolve() == img_dir.resolve() or img_dir.resolve() in out_dir.resolve().parents:
        raise DatasetError(
            f"--out-dir {out_dir} is inside --img-dir {img_dir}: the outputs would be written into "
            f"the input image folder; choose another folder (e.g. {img_dir.parent / example})"
        )


def _classes_output(out_dir: Path, names: list[str]) -> dict[Path, str]:
    """``{out_dir/classes.txt: names}``; empty when that file holds these names already (it is kept as it is)."""
    path, text = out_dir / "classes.txt", "".join(n + "\n" for n in names)
    try:
        same = path.is_file() and path.read_text(encoding="utf-8") == text
    except (OSError, UnicodeDecodeError):
        same = False
    return {} if same else {path: text}


def convert_coco_to_yolo(
    ann_file: str | os.PathLike, img_dir: str | os.PathLike, out_dir: str | os.PathLike, segments: bool = False
) -> dict:
    """``coco2yolo``: write ``out_dir/labels/<name>.txt`` per image and ``out_dir/classes.txt``; returns stats.

    Images missing from ``img_dir`` are counted in ``stats['missing_images']`` (labels are still written).
    ``out_dir`` may not be ``img_dir`` or inside it (the labels would go into the input image folder).
    Nothing existing is overwritten: a label file that exists already is an error (a ``classes.txt`` with the
    same names is kept), as in :func:`convert_coco_to_voc`.
    """
    ann_file, out_dir = Path(ann_file), Path(out_dir)
    img_dir = require_dir(img_dir, "--img-dir", "image folder")
    check_output_kind(out_dir, "--out-dir", folder=True)
    _out_dir_outside(out_dir, img_dir, "yolo")
    coco = _load_coco(ann_file, img_dir, segments)
    labels, names, stats = coco_to_yolo(coco, segments, str(ann_file))
    texts = {out_dir / "labels" / rel: text for rel, text in labels.items()}
    texts.update(_classes_output(out_dir, names))
    check_output(texts, [ann_file, *list_images(img_dir)], "--out-dir")
    refuse_existing(texts, "--out-dir", out_dir, "choose a new folder, or remove the old labels/ and classes.txt")
    stats["missing_images"] = sum(not (img_dir / im["file_name"]).is_file() for im in coco["images"])
    write_outputs(texts, "--out-dir", out_dir)
    return stats


def _copy_files(copies: dict[Path, Path]) -> None:
    """Copy each ``{destination: source}`` through a temporary file + rename."""
    for dst, src in copies.items():
        tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)


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
    image names differ (``--prefix``). ``split`` and ``prefix`` are plain names (no ``/``, ``\\``, ``..``;
    ``split`` not empty): every output stays inside ``out_dir``. Returns stats (see ``coco_to_voc``).
    """
    ann_file, out_dir = Path(ann_file), Path(out_dir)
    if split is not None:
        plain_name(split, "--split", "it names ImageSets/Main/<split>.txt", "val")
    plain_name(prefix, "--prefix", "it starts every image id", "val_", empty_ok=True)
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
    texts = {out_dir / "Annotations" / f"{i}.xml": r["xml"] for i, r in records.items()}
    texts[out_dir / "ImageSets" / "Main" / f"{split}.txt"] = "".join(i + "\n" for i in records)
    texts.update(_classes_output(out_dir, CategoryIndex(coco["categories"]).names))  # validated: names are str
    copies = {out_dir / "JPEGImages" / r["file_name"]: img_dir / r["image"] for r in records.values()}
    check_output([*texts, *copies], [ann_file, *copies.values()], "--out-dir")
    refuse_existing(
        [*texts, *copies],
        "--out-dir",
        out_dir,
        "choose a new folder (or remove the old files), another --split, or --prefix for other image names",
    )
    write_outputs(texts, "--out-dir", out_dir)
    (out_dir / "JPEGImages").mkdir(exist_ok=True)
    _copy_files(copies)
    stats["split"] = split
    return stats
