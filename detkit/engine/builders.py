"""Builders of the parts the engine trains with; module attributes so that tests can substitute them."""

from __future__ import annotations


# imported lazily: building the engine does not import every dataset and evaluator
def build_dataset(split_cfg: dict):
    from detkit.data.build import build_dataset as _build

    return _build(split_cfg)


def build_dataloader(cfg: dict, split: str, **kwargs):
    from detkit.data.build import build_dataloader as _build

    return _build(cfg, split, **kwargs)


def build_evaluator(cfg: dict, dataset):
    from detkit.evaluation import build_evaluator as _build

    return _build(cfg, dataset)


def model_class_names(dataset) -> list[str]:
    """The model's classes for ``dataset``: its class names, with 'background' first for a semantic dataset
    that paints background as class 0 (``CocoDataset(sem_background=True)``)."""
    names = list(dataset.class_names)
    return ["background", *names] if getattr(dataset, "sem_background", False) else names


def background_cat_id(cat_ids: list[int]) -> int:
    """The category id of the painted background class: 0 (COCO's ids start at 1; COCO-Stuff and panoptic
    keep 0 for "unlabeled"), or one below the smallest id when the dataset uses 0 for a category."""
    return min(min(cat_ids, default=1), 1) - 1


def model_cat_ids(dataset) -> list[int] | None:
    """The model's label -> category id list for ``dataset``, one per name of :func:`model_class_names`: the
    dataset's ids, with the background's (:func:`background_cat_id`) first for ``sem_background``; None for a
    dataset without category ids."""
    from detkit.engine.preflight import cat_ids

    ids = cat_ids(dataset)
    if ids is None or not getattr(dataset, "sem_background", False):
        return ids
    return [background_cat_id(ids), *ids]
