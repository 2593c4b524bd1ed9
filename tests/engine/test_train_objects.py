"""A detection training set without any object (no annotations, or crowd regions only) is refused before training."""

import json

import pytest

from detkit.data.datasets.coco import CocoDataset
from detkit.data.synthetic import make_shapes
from detkit.engine.parts import _check_objects
from detkit.engine.preflight import PreflightError


def test_a_training_set_without_objects_is_refused(tmp_path):
    make_shapes(tmp_path, num_train=2, num_val=0, size=(64, 64), seed=0)
    ann = tmp_path / "train.json"
    _check_objects(CocoDataset(ann, tmp_path / "train"))  # the shapes objects: fine
    data = json.loads(ann.read_text())
    for anns in ([], [{**a, "iscrowd": 1} for a in data["annotations"]]):
        empty = tmp_path / "empty.json"
        empty.write_text(json.dumps({**data, "annotations": anns}))
        with pytest.warns(UserWarning, match="no object to learn or evaluate"):
            dataset = CocoDataset(empty, tmp_path / "train")
        with pytest.raises(PreflightError, match=r"data.train \(.*empty.json\) holds no object to learn"):
            _check_objects(dataset)


def test_a_class_without_objects_is_warned_about(tmp_path, caplog):
    """A Roboflow export's placeholder category (id 0, no annotations) becomes a class the model never sees."""
    make_shapes(tmp_path, num_train=12, num_val=0, size=(64, 64), seed=0)
    data = json.loads((tmp_path / "train.json").read_text())
    assert {a["category_id"] for a in data["annotations"]} == {c["id"] for c in data["categories"]}  # all present
    placeholder = tmp_path / "placeholder.json"
    placeholder.write_text(json.dumps({**data, "categories": [{"id": 0, "name": "shapes"}, *data["categories"]]}))
    with caplog.at_level("WARNING", logger="detkit"):
        _check_objects(CocoDataset(tmp_path / "train.json", tmp_path / "train"))
        assert not caplog.records
        _check_objects(CocoDataset(placeholder, tmp_path / "train"))
    (record,) = caplog.records
    assert "1 class(es) without any object to learn: shapes" in record.getMessage()


def test_a_yolo_folder_without_label_files_says_where_they_were_looked_for(tmp_path):
    """No label file at all: the message is the dataset's path rule (where the .txt files were looked for), not the
    advice to give a json with annotations."""
    import shutil

    from detkit.data.datasets.yolo import YOLODataset

    make_shapes(tmp_path / "coco", num_train=2, num_val=0, size=(64, 64), seed=0)
    shutil.copytree(tmp_path / "coco" / "train", tmp_path / "ds" / "images" / "train")
    (tmp_path / "ds" / "labels" / "train").mkdir(parents=True)  # the folder, without a .txt in it
    with pytest.warns(UserWarning, match="none of the 2 images has a label file"):
        dataset = YOLODataset(img_dir=str(tmp_path / "ds" / "images" / "train"), classes=["circle"])
    with pytest.raises(PreflightError) as e:
        _check_objects(dataset)
    msg = str(e.value)
    assert msg.startswith("data.train holds no object to learn: ") and "labels are looked for by" in msg, msg
    assert str(tmp_path / "ds" / "labels" / "train") in msg and "training json" not in msg
