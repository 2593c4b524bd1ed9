"""Class metadata of a semantic model trained with a painted background class (``sem_background``)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from detkit.engine import builders

ROOT = Path(__file__).resolve().parents[2]


def _coco(shapes: Path, background: bool):
    from detkit.data.datasets.coco import CocoDataset

    return CocoDataset(
        shapes / "train.json", shapes / "train", with_sem_seg=True, sem_background=background, pipeline=[]
    )


def test_model_cat_ids_put_the_background_first(shapes):
    ds = _coco(shapes, background=True)
    names, ids = builders.model_class_names(ds), builders.model_cat_ids(ds)
    assert len(ids) == len(names) == 5
    assert ids == [0, *[int(ds.label_to_cat_id[i]) for i in range(4)]]
    assert dict(zip(ids, names))[0] == "background"


def test_model_cat_ids_without_background_are_the_dataset_ids(shapes):
    ds = _coco(shapes, background=False)
    assert builders.model_cat_ids(ds) == [int(ds.label_to_cat_id[i]) for i in range(4)]
    assert builders.model_cat_ids(SimpleNamespace(class_names=["a"])) is None  # no category ids


def test_background_id_stays_clear_of_a_category_id_0():
    assert builders.background_cat_id([1, 2]) == 0
    assert builders.background_cat_id([0, 1, 2]) == -1
    assert builders.background_cat_id([5, 9]) == 0
