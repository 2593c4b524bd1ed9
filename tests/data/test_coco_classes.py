"""CocoDataset(classes=[...]) keeps a subset of the json's categories (MMDetection's metainfo.classes): the other
annotations go, the images stay, labels follow the kept ids; a misspelt name is named with the nearest ones."""

from __future__ import annotations

import pytest

from detkit.data.datasets.coco import CocoDataset
from detkit.data.validate import DatasetError
from detkit.engine.preflight import PreflightError, check_categories
from detkit.evaluation import CocoEvaluator


def _ds(files, **kw) -> CocoDataset:
    return CocoDataset(ann_file=files.ann_file, img_dir=files.img_dir, **kw)


def test_a_subset_of_categories(coco_files):
    full = _ds(coco_files)
    ds = _ds(coco_files, classes=["zebra", "moose"])  # any order: labels follow the ids (moose 7, zebra 10)
    assert ds.class_names == ["moose", "zebra"] and ds.cat_ids == [7, 10] and ds.num_classes == 2
    assert len(ds) == len(full) == 3  # images stay (image 5 had nothing anyway)
    by_id = {ds.img_ids[i]: ds[i] for i in range(len(ds))}
    assert by_id[1]["labels"].tolist() == [1]  # image 1: the ant (id 3) gone, the zebra kept
    assert by_id[2]["labels"].tolist() == [0]  # image 2: the moose; its crowd ant gone too
    assert not [a for a in ds.coco.dataset["annotations"] if a["category_id"] == 3]  # crowd ant regions too
    assert {c["id"] for c in ds.coco.dataset["categories"]} == {7, 10}
    ev = CocoEvaluator(dataset=ds)
    assert ev.label_to_cat_id == [7, 10] and ev.class_names == ["moose", "zebra"]


def test_filter_empty_drops_the_images_left_without_objects(coco_files):
    ds = _ds(coco_files, classes=["ant"], filter_empty=True)
    assert ds.img_ids == [1]  # image 2's ant is a crowd region: no object left there


def test_mistakes_are_named(coco_files):
    with pytest.raises(DatasetError, match=r"kept classes \['zebr'\] are not categories .*'zebr': nearest zebra"):
        _ds(coco_files, classes=["zebr", "ant"])
    with pytest.raises(DatasetError, match="non-empty list"):
        _ds(coco_files, classes="zebra")
    with pytest.raises(DatasetError, match="more than once"):
        _ds(coco_files, classes=["ant", "ant"])
    with pytest.raises(PreflightError, match="give data.val the classes list of data.train"):
        check_categories(_ds(coco_files, classes=["ant", "zebra"]), _ds(coco_files))


def test_kept_names_match_in_any_case_and_name_a_category_once(coco_files):
    """The rule of detkit.utils.class_names: any case; two names of one category are a mistake, not a double."""
    ds = _ds(coco_files, classes=["Zebra", "MOOSE"])
    assert ds.class_names == ["moose", "zebra"] and ds.cat_ids == [7, 10]
    with pytest.raises(DatasetError, match=r"kept classes 'zebra' and 'Zebra' name the same category \('zebra'"):
        _ds(coco_files, classes=["zebra", "Zebra"])
    with pytest.raises(DatasetError, match=r"\['7'\] are not categories of this file; its categories: \["):
        _ds(coco_files, classes=["7"])  # a name, never an index


def test_the_config_check_knows_the_key(coco_files):
    from detkit.config_check import check_config

    cfg = {"data": {"train": {"type": "CocoDataset", "ann_file": "a.json", "img_dir": "x", "clases": ["a"]}}}
    with pytest.raises(Exception, match="classes"):
        check_config(cfg)
