"""Training-start checks of the data against the model (detkit.engine.preflight_data): the targets the model
learns from (instance masks, semantic maps) and the training size against data.val's."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import pytest

from detkit.config import load_config
from detkit.data.build import build_dataset
from detkit.engine import PreflightError
from detkit.engine.preflight_data import check_targets, model_targets, size_warning, split_size, warn_size_mismatch

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if "_base_" not in p.parts)


def _on_shapes(node: dict, shapes: Path, split: str) -> None:
    """Point a data split config (and the dataset it wraps) at the shapes fixture, in place."""
    if node.get("type") == "SegFolderDataset":
        node.update(img_dir=str(shapes / split), mask_dir=str(shapes / "sem" / split))
        node["classes"] = str(shapes / "sem" / "classes.txt")
        return
    for key in ("ann_file", "img_dir"):
        if key in node:
            node[key] = str(shapes / (f"{split}.json" if key == "ann_file" else split))
    if isinstance(node.get("dataset"), dict):
        _on_shapes(node["dataset"], shapes, split)


def _datasets(cfg: dict, shapes: Path):
    data = copy.deepcopy(cfg["data"])
    for split in ("train", "val"):
        _on_shapes(data[split], shapes, split)
    return build_dataset(data["train"]), build_dataset(data["val"])


def _cfg(config: str, *overrides: str) -> dict:
    return load_config(ROOT / "configs" / config, list(overrides))


def test_yolo_seg_without_masks_names_the_wrapped_key(shapes):
    cfg = _cfg("yolo/yolo_n_seg_shapes.yaml", "data.train.dataset.with_masks=false", "data.val.with_masks=false")
    train, val = _datasets(cfg, shapes)
    with pytest.raises(PreflightError) as e:
        check_targets(cfg["model"], train, val)
    assert str(e.value) == (
        "model.head (YOLOSegHead) learns from instance masks, but data.train gives none: "
        "set data.train.dataset.with_masks: true"
    )
    cfg = _cfg("yolo/yolo_n_seg_shapes.yaml", "data.val.with_masks=false")  # segm is scored on val's json
    check_targets(cfg["model"], *_datasets(cfg, shapes))


def test_mask_rcnn_without_masks_names_the_key(shapes):
    cfg = _cfg("mask_rcnn/mask_rcnn_r18_fpn_shapes.yaml", "data.train.with_masks=false")
    with pytest.raises(PreflightError, match=r"^model.mask_head \(RoIMaskHead\) learns from instance masks, but "
                       r"data.train gives none: set data.train.with_masks: true$"):  # fmt: skip
        check_targets(cfg["model"], *_datasets(cfg, shapes))


def test_segmentor_needs_maps_in_both_splits(shapes):
    model = _cfg("seg/semfpn_r18_shapes.yaml")["model"]
    cfg = _cfg("mask_rcnn/mask_rcnn_r18_fpn_shapes.yaml", "data.train.with_masks=false", "data.val.with_masks=false")
    train, val = _datasets(cfg, shapes)  # CocoDatasets without with_sem_seg
    with pytest.raises(PreflightError, match=r"model.decode_head \(SemanticFPNHead\) learns from \(and is scored on\) "
                       r"semantic maps, but data.train and data.val give none: set data.train.with_sem_seg: true "
                       r"and data.val.with_sem_seg: true$"):  # fmt: skip
        check_targets(model, train, val)
    train.with_sem_seg = True
    with pytest.raises(PreflightError, match=r"but data.val gives none: set data.val.with_sem_seg: true$"):
        check_targets(model, train, val)


def test_a_dataset_without_the_option_is_named_with_what_to_give(shapes):
    seg = _cfg("seg/semfpn_r18_shapes.yaml")
    sem_train, sem_val = _datasets(seg, shapes)  # SegFolderDatasets: label maps, no instance masks
    yolo_seg = _cfg("yolo/yolo_n_seg_shapes.yaml")["model"]
    with pytest.raises(PreflightError, match=r"set data.train \(SegFolderDataset\) has no with_masks option: give a "
                       r"CocoDataset or YOLODataset with with_masks: true$"):  # fmt: skip
        check_targets(yolo_seg, sem_train, sem_val)
    detector = _cfg("yolo/yolo_n_shapes.yaml")
    train, _ = _datasets(detector, shapes)
    with pytest.raises(PreflightError, match=r"^data.val gives semantic maps, so it would be scored on semantic "
                       r"segmentation \(mIoU\), but the model \(OneStageDetector, head YOLOHead\) predicts none: set "
                       r"data.val \(SegFolderDataset\) to a dataset of boxes"):  # fmt: skip
        check_targets(detector["model"], train, sem_val)


def test_val_masks_for_a_model_without_masks_are_refused(shapes):
    cfg = _cfg("yolo/yolo_n_shapes.yaml", "+data.val.with_masks=true")
    with pytest.raises(PreflightError, match=r"^data.val gives instance masks, so it would be scored on instance "
                       r"masks \(COCO segm\), but the model \(OneStageDetector, head YOLOHead\) predicts none: set "
                       r"data.val.with_masks: false$"):  # fmt: skip
        check_targets(cfg["model"], *_datasets(cfg, shapes))
    check_targets(cfg["model"], _datasets(cfg, shapes)[0], None)  # no data.val: nothing is scored


@pytest.mark.parametrize("path", PACKAGED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_packaged_configs_pass_both_checks(path, shapes):
    cfg = load_config(path)
    assert size_warning(cfg) is None  # config only: no data needed
    if cfg["model"].get("type") == "Classifier":
        assert model_targets(cfg["model"]) == {}
        return
    check_targets(cfg["model"], *_datasets(cfg, shapes))


def test_model_targets_from_the_config():
    assert model_targets(_cfg("yolo/yolo_n_shapes.yaml")["model"]) == {}
    assert model_targets(_cfg("yolo/yolo_n_seg_shapes.yaml")["model"]) == {"masks": "model.head (YOLOSegHead)"}
    assert model_targets(_cfg("faster_rcnn/faster_rcnn_r18_fpn_shapes.yaml")["model"]) == {}
    assert list(model_targets(_cfg("seg/upernet_r18_shapes.yaml")["model"])) == ["sem_seg"]
    assert model_targets({"type": "OneStageDetector", "head": {"type": "NoSuchHead"}}) == {}


def test_size_warning_names_both_keys_and_values(caplog):
    cfg = _cfg("yolo/yolo_n_shapes.yaml", "data.train.size=160")
    message = size_warning(cfg)
    assert message.startswith(
        "data.train.size is 160 (MixDataset) but data.val.pipeline.0.size is 320 (LetterBox): the model trains at "
        "160 px and is validated at 320 px, as detkit infer and export run it"
    )
    with caplog.at_level(logging.WARNING, logger="detkit"):
        assert warn_size_mismatch(cfg) == message
    assert [r.levelname for r in caplog.records] == ["WARNING"] and caplog.records[0].getMessage() == message
    caplog.clear()
    warn_size_mismatch(_cfg("yolo/yolo_n_shapes.yaml"))
    assert not caplog.records


def test_training_size_sources():
    data = {
        "train": {"type": "MixDataset", "mosaic": {"size": [256, 320]}},
        "val": {"type": "CocoDataset", "pipeline": [{"type": "Resize", "height": 320, "width": 320}]},
    }
    assert split_size(data, "train") == ("data.train.mosaic.size", (256, 320), "MixDataset")
    assert size_warning({"data": data}).startswith(
        "data.train.mosaic.size is 256x320 (MixDataset) but data.val.pipeline.0.height/width is 320 (Resize)"
    )
    data["train"] = {"type": "MixDataset", "pipeline": [{"type": "HorizontalFlip"}]}  # size not given: 640
    assert split_size(data, "train") == ("data.train.size (default 640)", (640, 640), "MixDataset")
    data["train"] = {"type": "CocoDataset", "pipeline": [{"type": "LetterBox", "size": 320}, {"type": "Flip"}]}
    assert size_warning({"data": data}) is None  # same size
    data["train"]["pipeline"] = [{"type": "ResizeShortestEdge", "short_sizes": [256, 320]}]  # multi-scale
    assert split_size(data, "train") is None and size_warning({"data": data}) is None
    data["test"] = {}
    data["train"] = {"type": "TiledDataset", "tile_size": 512}
    assert "validated at 320 px; give both" in size_warning({"data": data})  # data.test: infer uses that one
    assert size_warning({"data": {"train": data["train"]}}) is None  # no data.val


def test_train_and_val_sharing_images(tmp_path, caplog):
    """Parts of one split folder drawn with other settings share images: refused with the keys; one folder
    used whole for both splits: a warning (validation would score learnt images); disjoint parts: silent."""
    import numpy as np
    from PIL import Image

    from detkit.data.datasets.image_folder import ImageFolderDataset
    from detkit.engine.preflight_data import check_overlap

    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        for i in range(10):
            Image.fromarray(np.full((8, 8, 3), i * 20, np.uint8)).save(tmp_path / name / f"{i}.png")

    def part(fraction, subset, seed=0):
        return ImageFolderDataset(tmp_path, val_fraction=fraction, subset=subset, split_seed=seed)

    caplog.set_level(logging.WARNING, logger="detkit")
    check_overlap(part(0.2, "train"), part(0.2, "val"))
    assert not caplog.records
    for train, val in ((part(0.2, "train"), part(0.3, "val")), (part(0.2, "train", 1), part(0.2, "val"))):
        with pytest.raises(PreflightError, match=r"data.train and data.val share \d+ image\(s\)") as e:
            check_overlap(train, val)
        assert "data.val.split_seed" in str(e.value)
    whole = ImageFolderDataset(tmp_path)
    check_overlap(whole, ImageFolderDataset(tmp_path))
    assert "data.val shares 20 of its 20 images with data.train" in caplog.text and "val_fraction" in caplog.text
