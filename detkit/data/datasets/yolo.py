"""``YOLODataset``: train on an Ultralytics-style dataset (``data.yaml``, ``images/``, ``labels/*.txt``) as it is."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

from detkit.data.converters.common import IMAGE_EXTS, list_images
from detkit.data.converters.yolo import yolo_records
from detkit.data.datasets.coco import CocoDataset
from detkit.data.datasets.formats import CocoOptions, ProblemLog, Unpack, coco_dict, warn_unused_files
from detkit.data.datasets.seg_folder import load_class_names
from detkit.data.datasets.yolo_yaml import SPLITS, ImageList, read_data_yaml, read_image_list
from detkit.data.validate import WARNING, DatasetError, Problem
from detkit.registry import DATASETS

__all__ = ["SPLITS", "YOLODataset", "label_path", "read_data_yaml"]


def label_path(image: Path, img_dir: Path | None = None, label_dir: Path | None = None) -> Path:
    """The label file of an image: ``label_dir/<path relative to img_dir>.txt`` when ``label_dir`` is given, else
    Ultralytics' rule: the last ``/images/`` of the path becomes ``/labels/`` (``d/images/train/a.jpg`` ->
    ``d/labels/train/a.txt``; without an ``images`` folder, the ``.txt`` lies beside the image)."""
    if label_dir is not None:
        return label_dir / image.relative_to(img_dir).with_suffix(".txt")
    part = f"{os.sep}images{os.sep}"
    return Path(f"{os.sep}labels{os.sep}".join(os.fspath(image).rsplit(part, 1))).with_suffix(".txt")


@DATASETS.register
class YOLODataset(CocoDataset):
    """An Ultralytics-style detection / segmentation dataset, read as it is (no conversion step).

    Give ``data_yaml`` (``path``, ``train``, ``val``, ``test``, ``names``, as Ultralytics writes it, see
    :func:`read_data_yaml`) and ``split``, or an ``img_dir`` with ``classes``. Each image under the split's
    folders (recursively), or listed in its ``.txt`` files, takes its labels from ``label_dir/<relative
    path>.txt`` when ``label_dir`` is given, else from Ultralytics' sibling ``labels/`` folder
    (:func:`label_path`). A line is ``class cx cy w h`` (a box) or ``class x1 y1 x2 y2 ...`` (a polygon: its
    mask with ``with_masks``), normalised to 0..1, ``class`` a 0-based index into the names. Image sizes are
    read from the image headers.

    Samples, labels and checks are ``CocoDataset``'s (category ids are ``class + 1``; ``coco`` holds the
    records, for COCO evaluation). Problems named by file and line (a :class:`DatasetError`, or with
    ``on_error: skip`` the line or image left out with one warning counting them): a class index out of range,
    a malformed line, coordinates outside 0..1, a box line among polygon lines (or anywhere, with masks), an
    unreadable image or label file, an image that points outside its folder (a link), a listed image not
    found. Left out with a warning (``notes``, listed by ``detkit check``): a label line equal to an earlier
    one, a box of zero width or height. An image without a label file (or with an empty one) is a negative;
    label files without an image are named in a warning.

    Args:
        data_yaml: the dataset's ``data.yaml``. split: ``'train'``, ``'val'`` or ``'test'`` (a key of it).
        img_dir: an image folder (instead of ``data_yaml``). label_dir: the label folder (default: the
            sibling ``labels/`` folder). classes: the class names without ``data_yaml`` (a list or a text file,
            one name per line). **options: ``CocoDataset``'s (pipeline, with_masks, on_error, cache, ...).
    """

    def __init__(
        self,
        data_yaml: str | None = None,
        split: str = "train",
        img_dir: str | None = None,
        label_dir: str | None = None,
        classes: str | Sequence[str] | None = None,
        on_error: str = "raise",
        **options: Unpack[CocoOptions],
    ):
        if (data_yaml is None) == (img_dir is None):
            raise DatasetError("YOLODataset: give either data_yaml (with split) or img_dir (with classes)")
        if data_yaml is not None:
            if classes is not None:
                raise DatasetError(f"YOLODataset: the classes come from the 'names' of {data_yaml}; remove classes")
            sources, self.yolo_names, self.yaml_notes, yaml_root = read_data_yaml(data_yaml, split)
        else:
            if classes is None:
                raise DatasetError(f"YOLODataset: img_dir {img_dir} needs classes (a list, or a classes.txt file)")
            sources, self.yolo_names, self.yaml_notes, yaml_root = [Path(img_dir)], load_class_names(classes), [], None
        self.data_yaml, self.split, self.notes = data_yaml, split, list(self.yaml_notes)
        lists = [t for t in sources if yaml_root is not None and t.is_file()]  # the yaml's .txt lists of images
        self.folders = [Path(os.path.abspath(f)) for f in sources if f not in lists]
        self.lists = {Path(os.path.abspath(t)): read_image_list(t, yaml_root) for t in lists}
        self.label_dir = None if label_dir is None else Path(label_dir)
        if self.label_dir is not None and (len(self.folders) > 1 or self.lists):
            raise DatasetError(f"{data_yaml}: label_dir applies to one image folder, the {split} split has others")
        super().__init__(ann_file=data_yaml or img_dir, img_dir=self._image_root(), on_error=on_error, **options)
        self._warn_notes()

    def _image_root(self) -> Path:
        """The folder every image of the split lies in (``img_dir`` of the records); listed images by real path."""
        places = self.folders + [Path(os.path.realpath(p)).parent for lst in self.lists.values() for p in lst.images]
        if not places:
            txt = next(iter(self.lists))
            raise DatasetError(
                f"{self.data_yaml}: {self.split}: {txt} lists no image that exists ({', '.join(IMAGE_EXTS)}); "
                f"run detkit check {self.data_yaml} --split {self.split} for the details"
            )
        return Path(os.path.commonpath(places))

    def check_hint(self) -> str:
        if self.data_yaml is None:  # no file the tool can take: the config that describes this dataset
            return "run detkit check --config CONFIG (the config of this dataset) for the details"
        return f"run detkit check {self.data_yaml} --split {self.split} for the details"

    def load_annotations(self) -> tuple[dict, list[Problem]]:
        """The labels of every image of the split's folders and lists as a COCO dict; problems found on the way
        (warnings among them: the notes of the yaml and of the lines left out, also kept in ``notes``)."""
        log, root = ProblemLog(), Path(self.img_dir)
        images, label_folders, self._listed = [], [], {}
        for folder in self.folders:
            files = list_images(folder, "img_dir")
            if not files:
                raise DatasetError(f"{self.ann_file}: image folder {folder} holds no images ({', '.join(IMAGE_EXTS)})")
            label_folders.append(self._label_folder(folder))
            images += [p for p in files if log.image_path(root, p.relative_to(root).as_posix(), os.fspath(p))]
        for txt, listed in self.lists.items():
            images += self._listed_images(txt, listed)
            log.problems += listed.problems
        notes = list(self.yaml_notes) + [p for p in log.problems if p.severity == WARNING]

        def note(kind: str, message: str) -> None:
            notes.append(Problem(kind, message, severity=WARNING))

        masks = self.with_masks or self.with_sem_seg
        recs, anns, _, used = yolo_records(
            root, images, self._label_of, self.yolo_names, log, on_warning=note, masks=masks, refuse_mixed=True
        )
        notes += self._unlabelled(images)
        orphans = [t for d in label_folders if d.is_dir() for t in sorted(d.rglob("*.txt")) if t.resolve() not in used]
        warn_unused_files(
            [t for t in orphans if t.name != "classes.txt"],
            "label file(s) have no image",
            "add the images or remove them",
        )
        self.notes = notes
        problems = [p for p in log.problems if p.severity != WARNING] + notes
        return coco_dict(recs, anns, self.yolo_names, self.ann_file), problems

    def _unlabelled(self, images: list[Path]) -> list[Problem]:
        """A note (a WARNING) counting the images without a label file, which are read as background (Ultralytics'
        "N backgrounds"); when no image has one, the note says where the labels were looked for (the path rule)."""
        missing = [p for p in images if not self._label_of(p).is_file()]
        self.unlabelled, self.no_labels_note = len(missing), None
        if not missing:
            return []
        first, txt = missing[0], self._label_of(missing[0])
        if len(missing) < len(images):
            message = (
                f"{self.ann_file}: {len(missing)} of {len(images)} images have no label file in {txt.parent}, e.g. "
                f"{txt.name} (for {first.name}): treated as background (no objects)"
            )
            return [Problem("missing_label_file", message, severity=WARNING)]
        rule = (
            f"label_dir/<the image's path below {self.img_dir}>.txt"
            if self.label_dir is not None
            else "Ultralytics' rule: the last /images/ of the image's path becomes /labels/, the extension .txt"
        )
        message = (
            f"{self.ann_file}: none of the {len(images)} images has a label file: labels are looked for by {rule} "
            f"(e.g. {first} -> {txt}, not found); every image is background. Put the .txt files there"
            + ("" if self.label_dir is not None else ", or give label_dir")
        )
        self.no_labels_note = message
        return [Problem("no_label_files", message, severity=WARNING)]

    def _listed_images(self, txt: Path, listed: ImageList) -> list[Path]:
        """The images of a ``.txt`` list by real path, their labels found from the listed path (Ultralytics'
        rule); a DatasetError when no label folder of them exists."""
        labels = {Path(os.path.realpath(p)): label_path(p) for p in listed.images}
        folders = sorted({t.parent for t in labels.values()})
        if folders and not any(f.is_dir() for f in folders):
            raise DatasetError(
                f"{txt}: no label folder of its images exists (e.g. {folders[0]}); YOLO labels lie in the sibling "
                "labels/ folder of the images/ folder (images/train/a.jpg -> labels/train/a.txt)"
            )
        self._listed.update(labels)
        return list(labels)

    def _label_of(self, image: Path) -> Path:
        listed = self._listed.get(image)
        return listed if listed is not None else label_path(image, Path(self.img_dir), self.label_dir)

    def _label_folder(self, folder: Path) -> Path:
        """The label folder of an image folder; a DatasetError when it does not exist (no image could have labels)."""
        labels = self.label_dir if self.label_dir is not None else label_path(folder / "x.png").parent
        if not labels.is_dir():
            raise DatasetError(
                f"{self.ann_file}: label folder {labels} (for the images in {folder}) not found; YOLO labels lie in "
                f"the sibling labels/ folder (images/train/a.jpg -> labels/train/a.txt), or give label_dir"
            )
        return labels

    def _no_objects_message(self) -> str:
        """Without any label file, the warning of a dataset without objects says where the labels were looked for
        (the note of :meth:`_unlabelled`), not CocoDataset's "give the json that has them"."""
        if getattr(self, "no_labels_note", None):
            self._no_labels_said = True
            return f"{self.no_labels_note} (no object to learn or evaluate)"
        return super()._no_objects_message()

    def _warn_notes(self) -> None:
        """One warning per kind of note (the yaml read with a fix, label lines left out), naming the first."""
        by_kind: dict[str, list[Problem]] = {}
        for p in self.notes:
            if p.kind == "no_label_files" and getattr(self, "_no_labels_said", False):
                continue  # (said once, as the dataset's warning of no objects)
            by_kind.setdefault(p.kind, []).append(p)
        for p in by_kind.pop("data_yaml", []):  # a few, about the yaml: each
            warnings.warn(p.message, stacklevel=3)
        for kind, found in by_kind.items():
            more = f" (and {len(found) - 1} more [{kind}])" if len(found) > 1 else ""
            warnings.warn(f"{found[0].message}{more}; {self.check_hint()}", stacklevel=3)
