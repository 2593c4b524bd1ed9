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
