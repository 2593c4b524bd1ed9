"""detkit.data.data_arg: a packaged config pointed at an Ultralytics data.yaml (``--data``), at the config level
(wrappers, pipelines, masks, num_classes, test split, refusals) and built into datasets."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from detkit.config import ConfigError, load_config
from detkit.config_check import check_config
from detkit.data.data_arg import apply_data_yaml, data_yaml_keys, is_data_yaml, needs_masks, suggest_config
from detkit.data.validate import DatasetError


def make_ultralytics(root: Path, segments: bool = False, test: bool = False) -> Path:
    """A tiny Ultralytics dataset (shapes data, 64 px): ``root/images/{train,val}``, ``root/labels/...``,
    ``root/data.yaml``; returns the yaml."""
    from detkit.data.converters import convert_coco_to_yolo
    from detkit.data.synthetic import make_shapes

    make_shapes(root / "coco", num_train=4, num_val=2, size=(64, 64), seed=0)
    splits = ("train", "val", "test") if test else ("train", "val")
    for split in splits:
        source = "val" if split == "test" else split
        out = root / "converted" / split
        convert_coco_to_yolo(root / "coco" / f"{source}.json", root / "coco" / source, out, segments=segments)
        shutil.copytree(root / "coco" / source, root / "images" / split)
        shutil.copytree(out / "labels", root / "labels" / split)
    names = (root / "converted" / "train" / "classes.txt").read_text().split()
    shutil.rmtree(root / "converted")
    shutil.rmtree(root / "coco")
    data = {"path": ".", **{s: f"images/{s}" for s in splits}, "names": dict(enumerate(names))}
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root / "data.yaml"


@pytest.fixture(scope="module")
def data_yaml(tmp_path_factory) -> Path:
    return make_ultralytics(tmp_path_factory.mktemp("ultra"))


@pytest.fixture(scope="module")
def seg_yaml(tmp_path_factory) -> Path:
    return make_ultralytics(tmp_path_factory.mktemp("ultra_seg"), segments=True, test=True)


def _paths(node, found=None) -> list[str]:
    """Every ann_file / img_dir key left anywhere in a config node."""
    found = [] if found is None else found
    if isinstance(node, dict):
        found += [k for k in node if k in ("ann_file", "img_dir")]
        for v in node.values():
            _paths(v, found)
    elif isinstance(node, list):
        for v in node:
            _paths(v, found)
    return found


def test_yolo_recipe_keeps_the_wrapper_mosaic_and_pipelines(data_yaml):
    cfg = load_config("yolo_n_shapes")
    before = copy.deepcopy(cfg)
    out = apply_data_yaml(cfg, data_yaml)
    assert cfg == before  # the given config is left as it was
    train, val = out["data"]["train"], out["data"]["val"]
    assert train["type"] == "MixDataset" and train["size"] == before["data"]["train"]["size"]
    assert (
        train["mosaic"] == before["data"]["train"]["mosaic"]
        and train["pipeline"] == before["data"]["train"]["pipeline"]
    )
    assert train["dataset"] == {"type": "YOLODataset", "data_yaml": str(data_yaml.resolve()), "split": "train"}
    assert val == {
        "type": "YOLODataset",
        "data_yaml": str(data_yaml.resolve()),
        "split": "val",
        "pipeline": before["data"]["val"]["pipeline"],  # LetterBox
    }
    assert _paths(out["data"]) == []
    assert out["model"]["num_classes"] is None  # taken from the data, as before
    check_config(out)
    assert data_yaml_keys(out) == [("data", "train", "dataset"), ("data", "val")]


def test_a_fixed_class_count_follows_the_names(data_yaml):
    cfg = load_config("yolo_n_coco")
    assert cfg["model"]["num_classes"] == 80
    out = apply_data_yaml(cfg, data_yaml)
    assert out["model"]["num_classes"] == 4  # the shapes data's names
    assert out["data"]["train"]["dataset"]["type"] == "YOLODataset"
    assert ("model", "num_classes") in data_yaml_keys(out)


@pytest.mark.parametrize("name", ["yolo_n_seg_shapes", "yolo_n_seg_coco", "mask_rcnn_r18_fpn_shapes"])
def test_segmentation_configs_read_masks(seg_yaml, name):
    out = apply_data_yaml(load_config(name), seg_yaml)
    train = out["data"]["train"]
    inner = train.get("dataset", train)
    assert inner["type"] == "YOLODataset" and inner["with_masks"] is True
    assert out["data"]["val"]["with_masks"] is True and out["data"]["val"]["split"] == "val"
    check_config(out)


def test_two_stage_config_keeps_its_resize_and_options(data_yaml):
    cfg = load_config("faster_rcnn_r18_fpn_shapes", ["data.train.filter_empty=true", "+data.train.on_error=skip"])
    out = apply_data_yaml(cfg, data_yaml)
    train = out["data"]["train"]
    assert train["type"] == "YOLODataset" and train["split"] == "train"
    assert train["pipeline"] == cfg["data"]["train"]["pipeline"]
    assert train["filter_empty"] is True and train["on_error"] == "skip"
    assert "with_masks" not in train and _paths(out["data"]) == []
    check_config(out)


def test_test_split_follows_the_yaml(data_yaml, seg_yaml):
    cfg = load_config("yolo_n_seg_shapes")
    cfg["data"]["test"] = copy.deepcopy(cfg["data"]["val"])
    assert apply_data_yaml(cfg, seg_yaml)["data"]["test"]["split"] == "test"  # the yaml has a test split
    det = load_config("yolo_n_shapes")
    det["data"]["test"] = copy.deepcopy(det["data"]["val"])
    assert "test" not in apply_data_yaml(det, data_yaml)["data"]  # it has none: the old test set goes
    test = apply_data_yaml(load_config("yolo_n_shapes"), seg_yaml)["data"]["test"]  # the config has none: as val
    assert (test["split"], test["pipeline"]) == ("test", load_config("yolo_n_shapes")["data"]["val"]["pipeline"])


def test_refusals_name_the_file_and_the_fix(data_yaml, tmp_path):
    with pytest.raises(
        ConfigError, match=r"data.train is ImageFolderDataset: a classifier reads class folders.*yolo_n_coco"
    ):
        apply_data_yaml(load_config("resnet18_shapes"), data_yaml)
    with pytest.raises(ConfigError, match="semantic segmentor"):
        apply_data_yaml(load_config("semfpn_r18_shapes"), data_yaml)
    no_val = tmp_path / "no_val.yaml"
    raw = yaml.safe_load(data_yaml.read_text())
    raw["path"] = str(data_yaml.parent)
    del raw["val"]
    no_val.write_text(yaml.safe_dump(raw))
    with pytest.raises(DatasetError, match="no 'val' split"):
        apply_data_yaml(load_config("yolo_n_shapes"), no_val)
    with pytest.raises(DatasetError, match="not found"):
        apply_data_yaml(load_config("yolo_n_shapes"), tmp_path / "missing.yaml")


def test_data_yaml_is_recognised_and_the_config_suggested(data_yaml, seg_yaml):
    from detkit.config import resolve_config_path

    assert is_data_yaml(data_yaml) and is_data_yaml(seg_yaml)
    assert not is_data_yaml(resolve_config_path("yolo_n_shapes"))
    assert suggest_config(data_yaml) == "yolo_n_coco"
    assert suggest_config(seg_yaml) == "yolo_n_seg_coco"  # polygon labels
    assert suggest_config(None) == "yolo_n_coco"


def test_rewritten_config_builds_its_datasets(data_yaml, seg_yaml):
    from detkit.data.build import build_dataset

    out = apply_data_yaml(load_config("yolo_n_shapes", ["data.train.size=64"]), data_yaml)
    train, val = build_dataset(out["data"]["train"]), build_dataset(out["data"]["val"])
    assert (len(train), len(val)) == (4, 2)
    assert train.class_names == val.class_names == ["circle", "rectangle", "triangle", "star"]
    assert train[0]["image"].shape == (64, 64, 3)
    seg = apply_data_yaml(load_config("yolo_n_seg_shapes", ["data.train.size=64"]), seg_yaml)
    assert "masks" in build_dataset(seg["data"]["train"])[0]


@pytest.mark.parametrize(
    "name, fix",
    [
        ("mask_rcnn_r18_fpn_shapes", "faster_rcnn_r18_fpn_shapes"),
        ("yolo_n_seg_shapes", "yolo_n_shapes"),
        ("yolo_s_seg_coco", "yolo_s_coco"),
    ],
)
def test_a_mask_model_on_box_labels_is_one_refusal(data_yaml, name, fix):
    """Boxes-only labels and a mask model: one refusal naming the detection config, not with_masks (which the
    dataset's NO_MASK message and training's preflight would then contradict)."""
    with pytest.raises(ConfigError) as info:
        apply_data_yaml(load_config(name), data_yaml, name)
    text = str(info.value)
    assert "labels are boxes" in text and "polygon labels" in text and f"such as {fix} " in text
    assert "with_masks" not in text and "\n" not in text


def test_a_semantic_segmentor_is_refused_whatever_its_dataset(seg_yaml):
    """semfpn_r50_coco reads a CocoDataset with with_sem_seg: it would become a YOLODataset, an untested path."""
    with pytest.raises(ConfigError, match=r"semantic segmentor \(model.decode_head.*yolo_n_seg_coco"):
        apply_data_yaml(load_config("semfpn_r50_coco"), seg_yaml)


def test_needs_masks_agrees_with_the_preflight():
    from detkit.engine.preflight_data import MASKS, model_targets
    from detkit.models.heads.yolo_seg import YOLOSegHead
    from detkit.registry import HEADS

    name = "_TestSegHeadOfDataArg"
    if name not in HEADS._items:  # noqa: SLF001
        HEADS.register(type(name, (YOLOSegHead,), {}))
    model = {"type": "OneStageDetector", "head": {"type": name}}
    try:
        assert needs_masks(model) and MASKS in model_targets(model)  # a registered subclass of YOLOSegHead
    finally:
        HEADS._items.pop(name, None)  # noqa: SLF001
    assert needs_masks(load_config("mask_rcnn_r18_fpn_shapes")["model"])
    assert not needs_masks(load_config("yolo_n_shapes")["model"]) and not needs_masks(None)


def make_class_folders(root: Path, splits=("train", "valid"), classes=("circle", "square", "star")) -> Path:
    """Ultralytics' classification layout: ``root/<split>/<class>/<image>`` (one split: ``splits=("",)``)."""
    import numpy as np
    from PIL import Image

    for split in splits:
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            Image.fromarray(np.full((8, 8, 3), 127, np.uint8)).save(folder / "a.png")
    return root


def test_a_split_root_points_a_classifier_at_its_class_folders(tmp_path):
    from detkit.data.data_arg import apply_data_folder, class_folder_splits

    root = make_class_folders(tmp_path / "split", ("train", "valid", "test"))
    cfg = load_config("resnet50_imagenet")  # num_classes: 1000 (fixed); no data.test
    cfg["data"]["test"] = copy.deepcopy(cfg["data"]["val"])
    out, keys = apply_data_folder(cfg, root)
    data = out["data"]
    assert data["train"]["img_dir"] == str(root / "train") and data["train"]["classes"] is None
    assert data["val"]["img_dir"] == str(root / "valid") and data["val"]["classes"] == str(root / "train")
    assert data["test"]["img_dir"] == str(root / "test") and data["test"]["classes"] == str(root / "train")
    assert out["model"]["num_classes"] == 3 and ("model", "num_classes") in keys
    check_config(out)
    assert cfg["model"]["num_classes"] == 1000  # the input is not changed
    del cfg["data"]["test"]
    assert "test" not in apply_data_folder(cfg, make_class_folders(tmp_path / "s2"))[0]["data"]
    assert "test" not in apply_data_folder(load_config("resnet18_shapes"), tmp_path / "s2")[0]["data"]
    assert class_folder_splits(tmp_path / "s2") == [
        ("train", str(tmp_path / "s2/train")),
        ("val", str(tmp_path / "s2/valid")),
    ]
    assert suggest_config(tmp_path / "s2") == "resnet18_shapes"


def test_one_folder_of_class_folders_is_split_in_place(tmp_path):
    """Ultralytics splits ROOT/<class>/<image> 80/20 into a copy; detkit reads 20% of each class as data.val."""
    from detkit.data.data_arg import HOLD_OUT, apply_data_folder

    root = make_class_folders(tmp_path / "photos", ("",))
    cfg = load_config("resnet18_shapes")
    out, keys = apply_data_folder(cfg, root)
    train, val = out["data"]["train"], out["data"]["val"]
    assert train["img_dir"] == val["img_dir"] == val["classes"] == str(root)
    assert (train["val_fraction"], train["subset"]) == (HOLD_OUT, "train") == (val["val_fraction"], "train")
    assert val["subset"] == "val" and ("data", "val", "subset") in keys
    check_config(out)
    out, _ = apply_data_folder(cfg, root, val_set=True)  # the user's --set data.val=... decides
    assert out["data"]["train"]["img_dir"] == str(root) and "val_fraction" not in out["data"]["train"]
    only_train = make_class_folders(tmp_path / "t", ("train",))
    with pytest.raises(ConfigError, match=r"no val split \(val/, valid/ or validation/"):
        apply_data_folder(cfg, only_train)


def test_class_folders_refuse_a_detection_config_and_a_data_yaml_a_classifier(tmp_path, data_yaml):
    from detkit.data.data_arg import apply_data_folder

    root = make_class_folders(tmp_path / "split")
    for folder in (root, root / "train"):
        with pytest.raises(ConfigError, match="is a class-folder .classification. dataset") as e:
            apply_data_folder(load_config("yolo_n_shapes"), folder)
        assert "use a classifier config such as resnet18_shapes" in str(e.value)
    with pytest.raises(ConfigError, match="give the dataset's data.yaml") as e:
        apply_data_folder(load_config("yolo_n_shapes"), data_yaml.parent)
    assert f"--data {data_yaml}" in str(e.value)
    with pytest.raises(ConfigError, match="YOLO detection dataset"):
        apply_data_folder(load_config("resnet18_shapes"), data_yaml.parent)
    with pytest.raises(ConfigError, match="a classifier reads class folders: give the folder with --data"):
        apply_data_yaml(load_config("resnet18_shapes"), data_yaml)


def test_scoring_one_folder_takes_it_whole_and_old_split_keys_go(tmp_path):
    """eval --data ROOT (hold_out=False) scores every image of one class-folder tree; a run's split keys
    (val_fraction, subset) do not follow it onto other data that is not split in place."""
    from detkit.data.data_arg import apply_data_folder

    photos = make_class_folders(tmp_path / "photos", ("",))
    cfg = load_config("resnet18_shapes")
    scored, _ = apply_data_folder(cfg, photos, hold_out=False)
    assert scored["data"]["val"]["img_dir"] == str(photos) and "val_fraction" not in scored["data"]["val"]
    held, _ = apply_data_folder(cfg, photos)  # a run split in place, then pointed at a split root
    split_root = make_class_folders(tmp_path / "split", ("train", "val"))
    other, _ = apply_data_folder(held, split_root)
    for split in ("train", "val"):
        assert not {"val_fraction", "subset", "split_seed"} & set(other["data"][split]), other["data"][split]
