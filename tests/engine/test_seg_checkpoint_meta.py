"""Class metadata of a semantic model trained with a painted background class (``sem_background``)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import torch
import yaml

from detkit.config import load_config
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


def test_checkpoint_cat_ids_match_class_names(shapes, tmp_path):
    from detkit.engine import Trainer

    split = {"type": "CocoDataset", "with_sem_seg": True, "sem_background": True, "pipeline": []}
    cfg = {
        "_base_": [
            str(ROOT / "configs/_base_/models/semfpn_r18.yaml"),
            str(ROOT / "configs/_base_/schedules/adamw_cosine.yaml"),
            str(ROOT / "configs/_base_/runtime.yaml"),
        ],
        "data": {
            "batch_size": 2,
            "num_workers": 0,
            "train": {**split, "ann_file": str(shapes / "train.json"), "img_dir": str(shapes / "train")},
            "val": {**split, "ann_file": str(shapes / "val.json"), "img_dir": str(shapes / "val")},
        },
        "train": {"max_epochs": 1, "best_metric": "sem/mIoU"},
    }
    path = tmp_path / "seg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    Trainer(load_config(path), work_dir=tmp_path / "w", device="cpu").fit()
    for name in ("best.pth", "latest.pth"):
        meta = torch.load(tmp_path / "w" / name, map_location="cpu", weights_only=False)["meta"]
        assert meta["class_names"] == ["background", "circle", "rectangle", "triangle", "star"]
        assert meta["cat_ids"] == [0, 1, 2, 3, 4], name  # background 0, then the json's ids
    import detkit

    model = detkit.init_model(None, tmp_path / "w" / "best.pth", device="cpu")
    assert len(model.cat_ids) == len(model.class_names)
