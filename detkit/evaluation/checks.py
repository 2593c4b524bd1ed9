"""Do predictions and ground truth speak of the same images and categories? Loud warnings when they do not.

A model trained with its classes in another order, predictions written with 0-based labels instead of the
dataset's category ids, or predictions made on other images all give plausible-looking but wrong AP. These
checks run before every COCO evaluation and analysis; a mismatch is a :class:`CategoryMismatchWarning`
(a ``UserWarning``) that says what disagrees and the likely fix, and predictions with no image in the
ground truth are a :class:`ResultsMismatchError` (a ``ValueError``): there would be nothing to score.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar

__all__ = [
    "CategoryMismatchWarning",
    "ResultsMismatchError",
    "check_image_ids",
    "class_names_mismatch",
    "coverage_mismatch",
    "predicted_images",
    "results_category_mismatch",
    "warn_mismatch",
]


# image ids known to have been predicted on (with or without detections), set by ``predicted_images``
_PREDICTED: ContextVar[frozenset[int] | None] = ContextVar("detkit_predicted_images", default=None)


class CategoryMismatchWarning(UserWarning):
    """Predictions (or a model) and the ground truth disagree on categories or images."""


class ResultsMismatchError(ValueError):
    """Predictions that cannot be scored against this ground truth (their images are not in it)."""


def warn_mismatch(message: str, stacklevel: int = 3) -> None:
    """Issue ``message`` as a :class:`CategoryMismatchWarning` (tools print it as a ``WARNING`` line)."""
    warnings.warn(message, CategoryMismatchWarning, stacklevel=stacklevel)


def _ids(values: Iterable[int], n: int = 8) -> str:
    values = sorted(values)
    return ", ".join(map(str, values[:n])) + (f", ... ({len(values)} in all)" if len(values) > n else "")


def class_names_mismatch(
    model_names: Sequence[str], data_names: Sequence[str], model_source: str = "the model", data_source: str = "data"
) -> str | None:
    """Why ``model_names`` (the model's labels 0..C-1) do not mean ``data_names`` (the dataset's), or None.

    Labels are mapped to the dataset's categories by position, so the same names in another order score
    every class against another one, and other names score the model against classes it never learnt.
    """
    model_names, data_names = [str(n) for n in model_names], [str(n) for n in data_names]
    if model_names == data_names:
        return None
    if len(model_names) != len(data_names):
        return (
            f"{model_source} has {len(model_names)} classes ({', '.join(model_names[:6])}) but {data_source} has "
            f"{len(data_names)} ({', '.join(data_names[:6])}); use the dataset the model was trained for"
        )
    pairs = [f"label {i}: {m} vs {d}" for i, (m, d) in enumerate(zip(model_names, data_names)) if m != d]
    shown = "; ".join(pairs[:4]) + ("; ..." if len(pairs) > 4 else "")
    if sorted(model_names) == sorted(data_names):
        return (
            f"{model_source} has the class names of {data_source} in another order ({shown}); labels are matched "
            "to categories by position, so AP is measured against the wrong classes. Likely fix: evaluate on "
            "annotations whose categories, sorted by id, are in the model's order (those of its training "
            "annotation file), or use a checkpoint trained on this dataset"
        )
    return (
        f"{model_source} has other class names than {data_source} ({shown}); labels are matched to categories "
        "by position. Likely fix: evaluate on the dataset the model was trained for, or use a checkpoint "
        "trained on this dataset"
    )


def results_category_mismatch(
    results: Sequence[Mapping], gt_categories: Mapping[int, str], source: str = "predictions", gt_source: str = "gt"
) -> list[str]:
    """Messages for category ids of ``results`` that the ground truth lacks, and for ids whose name differs.

    ``gt_categories`` maps category id -> name. A result's ``category_name`` (``tools/infer.py`` writes it)
    is compared with the ground truth's name of the same id.
    """
    unknown: dict[int, int] = {}
    renamed: dict[int, set[str]] = {}
    for r in results:
        cid = r.get("category_id")
        if cid not in gt_categories:
            unknown[cid] = unknown.get(cid, 0) + 1
        elif "category_name" in r and str(r["category_name"]) != str(gt_categories[cid]):
            renamed.setdefault(cid, set()).add(str(r["category_name"]))
    messages = []
    if unknown:
        gt_ids = sorted(gt_categories)
        n = sum(unknown.values())
        hint = "write the predictions with the ground truth's category ids"
        known = [c for c in unknown if isinstance(c, int)]
        if known and min(known) >= 0 and max(known) < len(gt_ids) and 0 in unknown:
            hint = (
                "they look like 0-based labels: map label k to the ground truth's k-th category id "
                f"({', '.join(map(str, gt_ids[:4]))}, ...), e.g. run tools/infer.py with a checkpoint that "
                "stores the dataset's category ids (any checkpoint written by tools/train.py)"
            )
        messages.append(
            f"{source}: {n} prediction(s) have category ids ({_ids(unknown)}) that {gt_source} lacks (its ids: "
            f"{_ids(gt_ids)}); COCOeval ignores them. Likely fix: {hint}"
        )
    if renamed:
        pairs = [f"id {c}: {'/'.join(sorted(renamed[c]))} vs {gt_categories[c]}" for c in sorted(renamed)]
        messages.append(
            f"{source}: category names differ from {gt_source}'s for the same ids ({'; '.join(pairs[:4])}); "
            "the model's classes are in another order or of another dataset, so AP compares different classes. "
            "Likely fix: predict with the checkpoint trained on these categories (its meta holds their ids)"
        )
    return messages


def check_image_ids(
    result_img_ids: Iterable[int], gt_img_ids: Iterable[int], source: str = "predictions", gt_source: str = "gt"
) -> None:
    """Raise :class:`ResultsMismatchError` for predicted image ids that the ground truth lacks."""
    pred, gt = set(result_img_ids), set(gt_img_ids)
    extra = pred - gt
    if extra and not pred & gt:
        raise ResultsMismatchError(
            f"{source}: none of its {len(pred)} image ids ({_ids(pred, 5)}) is in {gt_source} (ids {_ids(gt, 5)}): "
            "the predictions were made for other images; analyse them against the annotation file of the "
            "images they were made on"
        )
    if extra:
        raise ResultsMismatchError(
            f"{source}: {len(extra)} of its {len(pred)} image ids ({_ids(extra, 5)}) are not in {gt_source}; "
            "COCO scores predictions only on its images: evaluate against the annotation file the predictions "
            "were made for"
        )


def coverage_mismatch(
    result_img_ids: Iterable[int], gt_img_ids: Iterable[int], source: str = "predictions", gt_source: str = "gt"
) -> str | None:
    """A message when predictions cover under half of the ground truth's images (a subset was predicted?).

    The images of the results count as predicted on, and inside ``predicted_images(ids)`` those ids too:
    an image the model ran on but found nothing in has no result record, yet it was not skipped.
    """
    pred, gt = set(result_img_ids) | (_PREDICTED.get() or frozenset()), set(gt_img_ids)
    if pred and len(gt) > 1 and len(pred & gt) < 0.5 * len(gt):
        return (
            f"{source}: predictions cover only {len(pred & gt)} of the {len(gt)} images of {gt_source}; every "
            "object of the other images counts as missed. Likely fix: predict on every image of the annotation "
            "file (or analyse the subset that was predicted)"
        )
    return None


@contextlib.contextmanager
def predicted_images(image_ids: Iterable[int]) -> Iterator[None]:
    """Within the block, ``coverage_mismatch`` counts ``image_ids`` as predicted on, detections or not."""
    token = _PREDICTED.set(frozenset(int(i) for i in image_ids))
    try:
        yield
    finally:
        _PREDICTED.reset(token)
