"""``VOCDataset``: train on a Pascal VOC folder (``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/``) as it is."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from detkit.data.converters.common import ImageProblems
from detkit.data.converters.voc import coco_from_voc_records, image_index, voc_record
from detkit.data.datasets.coco import CocoDataset
from detkit.data.datasets.formats import CocoOptions, ProblemLog, Unpack
from detkit.data.datasets.seg_folder import load_class_names
from detkit.data.validate import DatasetError, Problem
from detkit.registry import DATASETS

__all__ = ["VOCDataset", "read_split_ids"]


def read_split_ids(root: Path, split: str) -> list[str]:
    """The image ids of ``root/ImageSets/Main/<split>.txt`` (the first word of each line)."""
    sets = root / "ImageSets" / "Main"
    file = sets / f"{split}.txt"
    if not file.is_file():
        have = sorted(p.stem for p in sets.glob("*.txt") if "_" not in p.stem) if sets.is_dir() else []
        raise DatasetError(
            f"VOC split file {file} not found (split files there: {', '.join(have) or 'none'}); set split: to one of "
            "them, or split: null to use every XML file in Annotations/"
        )
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{file}: cannot read it ({e}); it lists one image id per line") from e
    return [ln.split()[0] for ln in lines if ln.strip()]


@DATASETS.register
class VOCDataset(CocoDataset):
    """A Pascal VOC folder (``VOCdevkit/VOC2012``): ``Annotations/<id>.xml``, ``JPEGImages/``, ``ImageSets/Main/<split>.txt``.

    The XML files are read as ``tools/convert_dataset.py voc2coco`` reads them (the same code: 1-based inclusive
    boxes, only the ``<object>`` elements under ``<annotation>``, the image found by ``<filename>`` or by its
    stem, its size checked against ``<size>``), then sampled and checked as ``CocoDataset`` does (category ids
    ``1..C`` in class order; ``coco`` holds the records, for COCO evaluation). ``difficult`` objects are crowd
    regions, as the VOC protocol ignores them: left out of ``boxes``, given by ``get_ann_info`` as
    ``crowd_boxes``, ignored by COCO evaluation; ``keep_difficult: true`` trains on them as ordinary boxes.

    Problems (a :class:`DatasetError` naming the file and object, or with ``on_error: skip`` left out with one
    warning counting them): a split id without its XML, an XML that does not parse or whose image is missing
    (the image is left out), a bad box or an object of a class outside ``classes`` (the object is left out),
    an id or ``<filename>`` that points outside its folder.

    Args:
        root: the VOC folder. split: the ``ImageSets/Main`` file (``train``, ``val``, ``trainval``, ``test``), or
            None for every XML file in ``Annotations/``.
        classes: class names (a list, or a text file with one name per line); default: the object names of the
            split's XML files, sorted (give the list so that every split has the same classes).
        keep_difficult: train on difficult objects (default: crowd regions). **options: ``CocoDataset``'s.
    """

    def __init__(
        self,
        root: str,
        split: str | None = "train",
        classes: str | Sequence[str] | None = None,
        keep_difficult: bool = False,
        on_error: str = "raise",
        **options: Unpack[CocoOptions],
    ):
        self.root, self.split, self.keep_difficult = Path(root), split, keep_difficult
        if not self.root.is_dir():
            state = "is a file, not a folder" if self.root.exists() else "not found"
            raise DatasetError(f"VOC root {root} {state}; give the folder that holds Annotations/ and JPEGImages/")
        self.ann_dir = self.root / "Annotations"
        for folder in (self.ann_dir, self.root / "JPEGImages"):
            if not folder.is_dir():
                raise DatasetError(f"VOC root {root} has no {folder.name}/ folder; give the VOC year folder (VOC2012)")
        self.voc_classes = None if classes is None else load_class_names(classes, by_line_index=False)
        self.classes_file = classes if isinstance(classes, (str, os.PathLike)) else None
        ann_file = self.ann_dir if split is None else self.root / "ImageSets" / "Main" / f"{split}.txt"
        super().__init__(ann_file=ann_file, img_dir=self.root / "JPEGImages", on_error=on_error, **options)

    def check_hint(self) -> str:
        split = "" if self.split is None else f" --split {self.split}"
        classes = "" if self.classes_file is None else f" --classes {os.fspath(self.classes_file)}"
        return f"run detkit check {self.root}{split}{classes} for the details"

    def _xml_files(self, log: ProblemLog) -> list[Path]:
        if self.split is None:
            return sorted(self.ann_dir.glob("*.xml"))
        files = []
        for image_id in read_split_ids(self.root, self.split):
            path = log.image_path(self.ann_dir, f"{image_id}.xml", f"{self.ann_file}: id {image_id!r}")
            if path is not None and not os.path.isfile(path):
                log("image", DatasetError(f"{self.ann_file}: id {image_id!r} has no XML file {path}"), "missing_xml")
            elif path is not None:
                files.append(Path(path))
        return files

    def _left_out(self, record: tuple, xml: Path, objects: ImageProblems) -> bool:
        """Report the bad objects of ``record`` (found by ``voc_record``, or of a class not in the given classes);
        True when the image goes with them (see :class:`ImageProblems`)."""
        for name in sorted({o[0] for o in record[3]} - set(self.voc_classes or {o[0] for o in record[3]})):
            objects(
                "annotation",
                DatasetError(
                    f"{xml}: object class '{name}' is not in the class list {self.voc_classes}; add it to the "
                    "classes (file or list)"
                ),
            )
        return objects.flush(xml)

    def load_annotations(self) -> tuple[dict, list[Problem]]:
        """The split's XML files as a COCO dict (difficult objects as crowd regions); problems found on the way."""
        log, img_dir = ProblemLog(), Path(self.img_dir)
        index, stats = image_index(img_dir), {"missing_image_files": [], "matched_by_stem": 0, "stem_matches": []}
        records = []
        for xml in self._xml_files(log):
            objects = ImageProblems(log)  # an image with a bad object goes with it
            try:
                record = voc_record(xml, img_dir, index, stats, on_problem=objects)
            except DatasetError as e:
                log("image", e, "bad_xml")
                continue
            if record is None:
                missing = stats["missing_image_files"][-1]
                error = DatasetError(f"{xml}: no image in {img_dir} ({missing}); add the image or fix <filename>")
                log("image", error, "missing_image")
                continue
            if self._left_out(record, xml, objects):
                continue
            records.append(record)
        coco = coco_from_voc_records(records, self.voc_classes, self.ann_dir, {"difficult": 0, "clipped": 0}, log)
        for ann in coco["annotations"]:
            ann["iscrowd"] = 0 if self.keep_difficult else ann["difficult"]
        return coco, log.problems
