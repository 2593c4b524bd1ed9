"""COCO-format dataset: boxes, labels, instance masks and semantic maps as numpy sample dicts."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch.utils.data
from pycocotools.coco import COCO

from detkit.data.categories import CategoryIndex
from detkit.data.category_subset import check_keep_classes, keep_categories
from detkit.data.image_cache import CacheMode, ImageCache
from detkit.data.image_io import ImageReadError, safe_join
from detkit.data.instance_masks import ann_to_mask, decode_mask, without_degenerate_parts
from detkit.data.validate import (
    FILE_RECORDS,
    DatasetError,
    Problem,
    SkippedRecords,
    check_on_error,
    drop_bad_records,
    format_problems,
    load_coco_json,
    problem_list,
    validate_coco,
    where_read,
)
from detkit.registry import DATASETS

__all__ = ["CocoDataset", "DatasetError", "ImageReadError", "ann_to_mask", "build_sem_seg"]

IGNORE = 255


def build_sem_seg(
    masks: np.ndarray, labels: np.ndarray, crowd_masks: np.ndarray, num_classes: int, background: bool = False
) -> np.ndarray:
    """Paint instance masks into one semantic map ``[H, W]`` (uint8, int32 past 254 classes).

    Rule: pixels covered by no object are 255 (ignore), or class 0 when ``background`` (then every
    object class is shifted by one: ``label + 1``). Objects are painted largest first, so a smaller
    object lying on a larger one stays visible. Crowd regions become 255 where no object was painted.

    Args:
        masks: ``uint8 [N, H, W]`` instance masks; labels: ``int64 [N]`` in 0..C-1.
        crowd_masks: ``uint8 [K, H, W]`` masks of crowd annotations.
    """
    h, w = masks.shape[1:]
    dtype = np.uint8 if num_classes + int(background) < IGNORE else np.int32
    sem = np.full((h, w), 0 if background else IGNORE, dtype=dtype)
    painted = np.zeros((h, w), dtype=bool)
    for k in np.argsort(-masks.sum(axis=(1, 2), dtype=np.int64), kind="stable"):
        m = masks[k].astype(bool)
        sem[m] = labels[k] + int(background)
        painted |= m
    for m in crowd_masks:
        sem[m.astype(bool) & ~painted] = IGNORE
    return sem


@DATASETS.register
class CocoDataset(torch.utils.data.Dataset):
    """A COCO json + image folder as a map-style dataset of numpy sample dicts (docs/contracts.md).

    Labels are contiguous 0..C-1 over the categories sorted by id (``cat_id_to_label`` /
    ``label_to_cat_id`` map both ways). Crowd annotations (``iscrowd=1``) are not in ``boxes``,
    ``labels`` or ``masks``; ``get_ann_info`` gives them as ``crowd_boxes``. Records are checked at
    construction (:func:`detkit.data.validate.validate_coco`; segmentations too when masks or semantic
    maps are asked for): ``on_error='raise'`` raises :class:`DatasetError` naming the file, record and
    fix; ``'skip'`` drops the bad images/annotations with one warning counting them by kind (an image that
    would lose an annotation goes with it, counted as ``bad_annotation``: kept, it would teach the object as
    background; ``skip_whole_images`` False keeps it, for datasets whose samples are the boxes). When a
    sample is read, a mask that fails to decode raises (``'raise'``) or leaves its annotation out with a
    warning (``'skip'``); an image that fails to decode gives ``None`` when ``skip_bad_images`` or
    ``'skip'``. ``skipped`` (:class:`detkit.data.validate.SkippedRecords`) counts what was left out.

    Args:
        ann_file: COCO json. img_dir: folder the images' ``file_name`` are relative to.
        pipeline: transform specs (built with ``detkit.data.transforms.build_transforms``) or a callable.
        with_masks: add ``masks`` ``uint8 [N, H, W]``. with_sem_seg: add ``sem_seg`` (see
            :func:`build_sem_seg`; ``sem_background`` adds a background class 0).
        filter_empty: drop images without (non-crowd) annotations.
        on_error: ``'raise'`` (default) or ``'skip'`` bad records, see above (docs/datasets.md).
        skip_bad_images: an image that fails to decode gives ``None`` (with one warning per file)
            instead of raising :class:`ImageReadError` (also when ``on_error='skip'``).
        class_names: if given, must equal the json's category names in id order (after ``classes``).
        classes: keep only the categories of these names (MMDetection's ``metainfo.classes``): the others'
            annotations are left out, their images stay (as negatives where nothing else is in them; drop those
            with ``filter_empty``); labels follow the kept categories' id order. Give data.val the same list.
        max_outside: fraction of the image size a box may extend beyond the image.
        cache: keep the decoded images for the next epochs: ``'ram'``, ``'disk'`` (``.npy`` files in
            ``cache_dir``, default ``~/.cache/detkit/images``) or false (:class:`detkit.data.image_cache.ImageCache`;
            filled when the dataset is built). cache_dir: the disk cache's folder.

    Subclasses that read another format (``YOLODataset``, ``VOCDataset``) override :meth:`load_annotations`.
    """

    skip_whole_images = True  # on_error: skip leaves out an image with a bad annotation (see above)

    def __init__(
        self,
        ann_file: str | os.PathLike,
        img_dir: str | os.PathLike,
        pipeline: Sequence[dict] | Callable | None = None,
        with_masks: bool = False,
        with_sem_seg: bool = False,
        filter_empty: bool = False,
        on_error: str = "raise",
        skip_bad_images: bool = True,
        class_names: Sequence[str] | None = None,
        classes: Sequence[str] | None = None,
        sem_background: bool = False,
        max_outside: float = 0.1,
        cache: CacheMode = False,
        cache_dir: str | None = None,
    ):
        self.on_error = check_on_error(on_error, type(self).__name__)
        self.skipped = SkippedRecords()
        self.ann_file, self.img_dir = os.fspath(ann_file), os.fspath(img_dir)
        self.with_masks, self.with_sem_seg, self.sem_background = with_masks, with_sem_seg, sem_background
        self.skip_bad_images, self.filter_empty = skip_bad_images, filter_empty
        if not os.path.isdir(self.img_dir):
            state = "is a file, not a folder" if os.path.exists(self.img_dir) else "not found"
            where = where_read(self.img_dir) if state == "not found" else ""
            raise DatasetError(f"image folder {self.img_dir} (for {self.ann_file}) {state}{where}; check img_dir")
        self.keep_classes = None if classes is None else check_keep_classes(classes, self.ann_file)
        self.coco = self._load(max_outside)
        cats = CategoryIndex(self.coco.cats.values())
        self.cat_ids: list = cats.cat_ids
        self.class_names: list[str] = cats.names
        self.cat_id_to_label, self.label_to_cat_id = cats.cat_id_to_label, cats.label_to_cat_id
        if class_names is not None and list(class_names) != self.class_names:
            raise DatasetError(
                f"{self.ann_file}: class_names {list(class_names)} differ from the json's "
                f"categories (sorted by id) {self.class_names}; fix the config or the json"
            )
        self.img_ids: list = [im["id"] for im in self.coco.dataset["images"]]
        if filter_empty:
            self.img_ids = [i for i in self.img_ids if self._split(i)[0]]
        if not self.img_ids:
            warnings.warn(
                f"{self.ann_file}: the dataset has no images"
                f"{' with annotations (filter_empty=True)' if filter_empty else ''}",
                stacklevel=2,
            )
        elif not self.has_objects():
            warnings.warn(self._no_objects_message(), stacklevel=2)
        self.aspect_ratios = np.array(
            [self.coco.imgs[i]["height"] / self.coco.imgs[i]["width"] for i in self.img_ids], dtype=np.float32
        )  # h / w
        from detkit.data.transforms import as_pipeline  # lazy: transforms import this module's users

        self.pipeline = as_pipeline(pipeline)
        self.image_cache = ImageCache(cache, cache_dir, owner=self.ann_file)
        if self.image_cache.mode:
            self.image_cache.fill([safe_join(self.img_dir, self.coco.imgs[i]["file_name"]) for i in self.img_ids])

    def load_annotations(self) -> tuple[dict, list[Problem]]:
        """The COCO dict of ``ann_file``, and problems found while reading it (none for a json).

        A subclass that converts another format returns its records as a COCO dict, leaving out the records
        it reports as problems (``Problem`` with ``index=None`` and ``record`` ``'image'`` or ``'annotation'``).
        """
        return load_coco_json(self.ann_file), []

    def has_objects(self) -> bool:
        """Whether any image of the dataset has an object (a non-crowd annotation)."""
        return any(self._split(i)[0] for i in self.img_ids)

    def _no_objects_message(self) -> str:
        """The warning for a dataset whose images have no (non-crowd) annotation: nothing to learn or evaluate."""
        what = "every annotation is a crowd region" if self.coco.dataset["annotations"] else "it has no annotations"
        return (
            f"{self.ann_file}: no object to learn or evaluate ({what}): every one of its {len(self.img_ids)} "
            f"images is a negative, so training on it learns only background and COCO evaluation on it has no "
            f"ground truth (AP -1); add the annotations, or give the json that has them"
        )

    def check_hint(self) -> str:
        """The command that lists every problem of this dataset, for messages."""
        return f"run detkit check {self.ann_file} {self.img_dir} for the details"

    def _load(self, max_outside: float) -> COCO:
        """Read, check and index the json (pycocotools' prints silenced)."""
        data, problems = self.load_annotations()
        if self.keep_classes is not None:
            data = keep_categories(data, self.keep_classes, self.ann_file)
        problems = problems + validate_coco(
            data,
            self.img_dir,
            self.ann_file,
            max_outside=max_outside,
            check_segmentation=self.with_masks or self.with_sem_seg,
        )
        for kind, what in (("box_mask_mismatch", "whose bbox disagrees with its mask"),
                           ("polygon_part_dropped", "with polygon parts of under 3 points (left out)")):  # fmt: skip
            said = [p for p in problems if p.kind == kind]
            if said:  # trains, but maybe not as the user means
                warnings.warn(
                    f"{self.ann_file}: {len(said)} annotation(s) {what}, e.g. {said[0].message}; {self.check_hint()}",
                    stacklevel=3,
                )
        errors = problem_list(problems)
        fatal = [p for p in errors if p.record in FILE_RECORDS]
        if fatal:  # no record to leave out: 'skip' cannot help
            raise DatasetError(
                f"{len(fatal)} problem(s) in {self.ann_file}:\n{format_problems(fatal, 5, self.check_hint())}"
            )
        missing = sum(p.kind == "missing_image" for p in errors)
        if missing and missing == len(data.get("images") or []):  # the wrong folder, not bad records
            first = data["images"][0].get("file_name")
            raise DatasetError(
                f"img_dir {self.img_dir} holds none of the {missing} images of {self.ann_file} (e.g. {first!r}): set "
                "img_dir to the folder that their file_name values are relative to"
            )
        if errors and self.on_error == "raise":
            errors = [p for p in errors if p.kind != "bad_annotation"]  # what 'skip' does about a bad label: not one
            raise DatasetError(
                f"{len(errors)} bad record(s) in {self.ann_file}:\n{format_problems(errors, 5, self.check_hint())}\n"
                "Fix them, or set on_error: skip for the split that reads this file (data.train.on_error, "
                "data.val.on_error or data.test.on_error) to leave them out."
            )
        if errors:
            data = self._drop(data, problems)
        if self.with_masks or self.with_sem_seg:  # the masks trained on and the ground truth scored agree
            data, _ = without_degenerate_parts(data)
        coco = COCO()
        coco.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
        coco.source = self.ann_file  # evaluation's messages name the file (detkit.evaluation.coco_metrics)
        return coco

    def _drop(self, data: dict, problems: list) -> dict:
        """``data`` without its bad records, with one warning that counts them (on_error='skip')."""
        kept, counts = drop_bad_records(data, problems, whole_images=self.skip_whole_images)
        for record, by_kind in counts.items():
            for kind, n in by_kind.items():
                self.skipped.add(record, kind, n)
        n_img, n_ann = len(data["images"]), len(data.get("annotations") or [])
        n_img += sum(p.record == "image" and p.index is None for p in problems)  # left out by load_annotations
        n_ann += sum(p.record == "annotation" and p.index is None for p in problems)
        kinds = {r: ", ".join(f"{k}: {n}" for k, n in sorted(c.items())) for r, c in counts.items()}
        warnings.warn(
            f"{self.ann_file}: on_error='skip' dropped {n_img - len(kept['images'])} image(s) "
            f"({kinds['image'] or 'none'}) and {n_ann - len(kept['annotations'])} annotation(s) "
            f"({kinds['annotation'] or 'none'}); {self.check_hint()}",
            stacklevel=4,
        )
        return kept

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.img_ids)

    def _split(self, img_id: Any) -> tuple[list[dict], list[dict]]:
        """The image's annotations as (non-crowd, crowd)."""
        anns = self.coco.imgToAnns.get(img_id, [])
        return [a for a in anns if not a.get("iscrowd", 0)], [a for a in anns if a.get("iscrowd", 0)]

    @staticmethod
    def _boxes(anns: list[dict], h: float, w: float) -> np.ndarray:
        """COCO ``[x, y, w, h]`` -> ``float32 [N, 4]`` xyxy clipped to the image."""
        b = np.array([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4)
        b[:, 2:] += b[:, :2]
        b[:, 0::2] = b[:, 0::2].clip(0, w)
        b[:, 1::2] = b[:, 1::2].clip(0, h)
        return b

    def get_ann_info(self, i: int) -> dict:
        """Boxes and labels of image ``i`` without reading it (json image size).

        Returns ``boxes`` float32 [N, 4] xyxy, ``labels`` int64 [N], ``crowd_boxes`` float32 [K, 4],
        ``image_id``, ``orig_size`` (h, w) from the json.
        """
        img_id = self.img_ids[i]
        info = self.coco.imgs[img_id]
        anns, crowd = self._split(img_id)
        h, w = info["height"], info["width"]
        return {
            "boxes": self._boxes(anns, h, w),
            "labels": np.array([self.cat_id_to_label[a["category_id"]] for a in anns], dtype=np.int64),
            "crowd_boxes": self._boxes(crowd, h, w),
            "image_id": img_id,
            "orig_size": (h, w),
        }

    def _read(self, info: dict) -> np.ndarray | None:
        path = safe_join(self.img_dir, info["file_name"])
        try:
            image = self.image_cache.read(path)
        except ImageReadError as e:
            if not (self.skip_bad_images or self.on_error == "skip"):
                raise
            why = "skip_bad_images=True" if self.skip_bad_images else "on_error='skip'"
            self.skipped.note(
                "image",
                "unreadable_image",
                path,
                f"{e} (image id {info['id']} in {self.ann_file}); skipping it ({why})",
            )
            return None
        if image.shape[:2] != (info["height"], info["width"]):
            return self._size_mismatch(path, info, image)
        return image

    def _size_mismatch(self, path: str, info: dict, image: np.ndarray) -> np.ndarray | None:
        """An image whose size is not the json's: its boxes are in another frame than the pixels. A
        ``DatasetError`` naming it (``on_error: raise``), or the image left out and counted (``skip``)."""
        h, w = image.shape[:2]
        turned = " (swapped: the EXIF orientation turns the image)" if (w, h) == (info["height"], info["width"]) else ""
        text = (
            f"{path}: the image is {w}x{h} (width x height, after EXIF orientation) but {self.ann_file} says "
            f"{info['width']}x{info['height']}{turned}: its boxes are in the json's frame, not the image's"
        )
        if self.on_error == "skip":
            self.skipped.note("image", "size_mismatch", path, f"{text}; skipping it (on_error='skip')")
            return None
        raise DatasetError(
            f"{text}. Write the real size into the json (or resize the image back), or set on_error: skip for the "
            f"split that reads this file to leave such images out; {self.check_hint()} lists every one"
        )

    def _masks(self, anns: list[dict], h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """Decoded masks ``uint8 [N, h, w]`` and which decoded (``bool [N]``; all, or an error, unless 'skip')."""
        masks = np.zeros((len(anns), h, w), dtype=np.uint8)
        ok = np.ones(len(anns), dtype=bool)
        for k, a in enumerate(anns):
            try:
                masks[k] = decode_mask(a["segmentation"], h, w)
                continue
            except ValueError as e:
                why = str(e)
            msg = (
                f"{self.ann_file}: annotation id {a['id']} (image id {a['image_id']}): {why}; fix the segmentation "
                f"(detkit check {self.ann_file} {self.img_dir} checks them all)"
            )
            if self.on_error == "raise":
                raise DatasetError(f"{msg}, or set on_error: skip to leave such annotations out")
            what = "its image" if self.skip_whole_images else "annotation"
            self.skipped.note(
                "annotation", "bad_mask", (a["id"], a["image_id"]), f"{msg}; {what} left out (on_error='skip')"
            )
            ok[k] = False
        return masks, ok

    def __getitem__(self, i: int) -> dict | None:
        """Sample ``i`` after the pipeline, or ``None`` when its image (or, under 'skip', one of its masks) fails to
        decode and that is skipped."""
        img_id = self.img_ids[i]
        info = self.coco.imgs[img_id]
        image = self._read(info)
        if image is None:
            return None
        h, w = image.shape[:2]
        anns, crowd = self._split(img_id)
        boxes = self._boxes(anns, h, w)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        anns, boxes = [a for a, k in zip(anns, keep) if k], boxes[keep]
        masks = None
        if self.with_masks or self.with_sem_seg:
            masks, decoded = self._masks(anns, h, w)
            if self.skip_whole_images and not decoded.all():  # as a bad record found when built: the image goes
                return None
            anns, boxes, masks = [a for a, k in zip(anns, decoded) if k], boxes[decoded], masks[decoded]
        labels = np.array([self.cat_id_to_label[a["category_id"]] for a in anns], dtype=np.int64)
        sample = {
            "image": image,
            "boxes": boxes,
            "labels": labels,
            "image_id": img_id,
            "orig_size": (h, w),
            "scale_factor": (1.0, 1.0),
            "pad_offset": (0, 0),
        }
        if self.with_masks:
            sample["masks"] = masks
        if self.with_sem_seg:
            crowd_masks, decoded = self._masks(crowd, h, w)
            if self.skip_whole_images and not decoded.all():
                return None
            sample["sem_seg"] = build_sem_seg(
                masks, labels, crowd_masks[decoded], self.num_classes, self.sem_background
            )
        return self.pipeline(sample) if self.pipeline is not None else sample
