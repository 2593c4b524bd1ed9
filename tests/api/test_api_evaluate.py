"""detkit.evaluate: a model, or a config and a checkpoint, scored on the config's data.val (or other data) as
``detkit eval`` scores it; clear errors for arguments of the wrong kind."""

from __future__ import annotations

import copy
import shutil

import pytest
import yaml

import detkit
from detkit.config import ConfigError
from detkit.engine.evaluate import evaluate_checkpoint
from detkit.evaluation.checks import CategoryMismatchWarning
from detkit.utils.checkpoint import CheckpointMismatchError


def test_a_model_and_its_checkpoint_score_as_detkit_eval(shapes):
    model, ckpt = shapes["model"], shapes["checkpoint"]
    metrics = detkit.evaluate(model)
    assert "bbox/AP" in metrics and all(isinstance(v, float) for v in metrics.values())
    assert detkit.evaluate(model.cfg, ckpt, device="cpu") == metrics  # a config dict and the checkpoint
    assert detkit.evaluate(checkpoint=ckpt, device="cpu") == metrics  # the config stored in the checkpoint
    assert evaluate_checkpoint(model.cfg, ckpt, device="cpu")[0] == metrics  # tools/eval.py's numbers


def test_other_data_by_dict_leaves_the_model_and_its_config_as_they_were(shapes):
    model, d = shapes["model"], shapes["dir"]
    own = model.cfg
    moved = copy.deepcopy(own)
    moved["data"]["val"].update(ann_file="moved/val.json", img_dir="moved/val")
    kept = copy.deepcopy(moved)
    model.cfg = moved
    model.train()
    try:
        got = detkit.evaluate(model, data={"ann_file": str(d / "val.json"), "img_dir": str(d / "val")})
        assert model.training and model.cfg == kept  # put back in its mode; its config not modified
    finally:
        model.eval()
        model.cfg = own
    assert got == detkit.evaluate(model)


def test_progress_is_on_stderr_when_asked(shapes, capsys):
    detkit.evaluate(shapes["model"])
    assert capsys.readouterr().err == ""  # captured output: no bar
    detkit.evaluate(shapes["model"], progress=True)
    assert "evaluating" in capsys.readouterr().err


def test_class_names_are_checked_against_the_data(shapes, model):
    with pytest.raises(CheckpointMismatchError, match=r"evaluate: the model has 2 classes \(a, b\) but data.val"):
        detkit.evaluate(
            model, data={"ann_file": str(shapes["dir"] / "val.json"), "img_dir": str(shapes["dir"] / "val")}
        )
    swapped = shapes["model"]
    names = list(swapped.class_names)
    swapped.class_names = [names[1], names[0], *names[2:]]
    try:
        with pytest.warns(CategoryMismatchWarning, match="another order") as rec:
            detkit.evaluate(swapped)
        assert rec[0].filename == __file__  # at the caller's line
    finally:
        swapped.class_names = names


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda m, c: detkit.evaluate(3), TypeError, r"evaluate: model must be a model .*, got int"),
        (lambda m, c: detkit.evaluate(m, c), ValueError, r"checkpoint is for a model built from a config"),
        (lambda m, c: detkit.evaluate(m, device="cpu"), ValueError, r"device is for a model built from a config"),
        (lambda m, c: detkit.evaluate(m.cfg), ValueError, r"no checkpoint given; evaluate\(CONFIG, CHECKPOINT\)"),
        (lambda m, c: detkit.evaluate(m.cfg, 5), TypeError, r"checkpoint must be a path, got int"),
        (lambda m, c: detkit.evaluate(m, split="train"), ValueError, r"split must be 'val' or 'test'"),
        (lambda m, c: detkit.evaluate(m, progress="yes"), TypeError, r"progress must be True, False or None"),
        (lambda m, c: detkit.evaluate(m, data=3), TypeError, r"data must be a dataset dict, .* got int"),
        (lambda m, c: detkit.evaluate(m, data="val.json"), ValueError, r"data=\{'ann_file': 'val.json', 'img_dir'"),
        (lambda m, c: detkit.evaluate(m, data="nowhere.yaml"), FileNotFoundError, r"data nowhere.yaml not found"),
        (lambda m, c: detkit.evaluate(m, data={"ann_fle": "x.json"}), ConfigError, r"ann_fle.*nearest valid.*ann_file"),
        (lambda m, c: detkit.evaluate(m, split="test"), ConfigError, r"data.test is missing, so there is nothing"),
    ],
)
def test_mistakes_name_the_argument(shapes, call, error, match):
    with pytest.raises(error, match=match):
        call(shapes["model"], shapes["checkpoint"])


def test_a_model_without_its_config_is_refused(shapes):
    bare = detkit.build_model(shapes["model"].cfg, class_names=list(shapes["model"].class_names))
    del bare.cfg  # (a model built from its parts)
    with pytest.raises(ValueError, match=r"carries no config \(model.cfg\) .*detkit.init_model"):
        detkit.evaluate(bare)


def test_a_checkpoint_given_first_is_the_checkpoint(shapes, tmp_path):
    ckpt = shapes["checkpoint"]
    assert detkit.evaluate(str(ckpt), device="cpu") == detkit.evaluate(None, ckpt, device="cpu")
    config = tmp_path / "cfg.yaml"
    config.write_text("_base_: [yolo_n_shapes]\n")
    with pytest.raises(ValueError, match=rf"is a checkpoint, not a config.*: evaluate\('{config}', '{ckpt}'\)"):
        detkit.evaluate(str(ckpt), str(config))  # swapped
    with pytest.raises(ValueError, match=rf"order is evaluate\(CONFIG, CHECKPOINT\): evaluate\(None, '{ckpt}'\)"):
        detkit.evaluate(str(ckpt), str(ckpt))


def test_a_segmentor_is_told_the_data_that_fits_it(seg):
    model, d = seg["model"], seg["dir"]
    seg_dict = r"data= as a dict \{'img_dir': IMAGES, 'mask_dir': LABEL_MAPS\}"
    with pytest.raises(ConfigError, match=rf"^evaluate: data={d} is a folder, and a semantic segmentor .* give data="):
        detkit.evaluate(model, data=str(d))  # (not --data, not a data.yaml)
    with pytest.raises(ConfigError, match=rf"evaluate: data='{d}/val.json' is a file, .*{seg_dict}"):
        detkit.evaluate(model, data=str(d / "val.json"))
    with pytest.raises(ConfigError, match=rf"data.test is missing, .*{seg_dict} \(read as data.val is") as e:
        detkit.evaluate(model, split="test")
    assert "CocoDataset" not in str(e.value)
    test = detkit.evaluate(model, data={"img_dir": str(d / "val"), "mask_dir": str(d / "sem/val")}, split="test")
    assert "sem/mIoU" in test and test == detkit.evaluate(model)  # the dict read with data.val's type and pipeline


@pytest.fixture(scope="module")
def yolo_shapes(shapes, tmp_path_factory):
    """The shapes val images (and their labels) as an Ultralytics dataset, train and val alike: its data.yaml."""
    from detkit.data.converters import convert_coco_to_yolo

    root, d = tmp_path_factory.mktemp("ultra"), shapes["dir"]
    convert_coco_to_yolo(d / "val.json", d / "val", root / "converted")
    for split in ("train", "val"):
        shutil.copytree(d / "val", root / "images" / split)
        shutil.copytree(root / "converted" / "labels", root / "labels" / split)
    names = (root / "converted" / "classes.txt").read_text().split()
    data = {"path": str(root), "train": "images/train", "val": "images/val", "names": dict(enumerate(names))}
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root / "data.yaml"


def test_a_coco_dict_scores_a_model_trained_on_a_data_yaml(shapes, yolo_shapes):
    """The documented dict {'ann_file', 'img_dir'} over a data.val that is a YOLODataset (a run of --data data.yaml)
    is a CocoDataset with data.val's pipeline; keys of no dataset type together ask for a 'type'."""
    model, d = shapes["model"], shapes["dir"]
    own = model.cfg
    model.cfg = copy.deepcopy(own)
    model.cfg["data"]["val"] = {"type": "YOLODataset", "data_yaml": str(yolo_shapes), "split": "val"}
    model.cfg["data"]["val"]["pipeline"] = own["data"]["val"]["pipeline"]
    try:
        got = detkit.evaluate(model, data={"ann_file": str(d / "val.json"), "img_dir": str(d / "val")})
        with pytest.raises(ConfigError, match=r"a YOLODataset, which takes no ann_file; .*give its 'type' as well"):
            detkit.evaluate(model, data={"ann_file": str(d / "val.json")})
    finally:
        model.cfg = own
    assert got == detkit.evaluate(model)


def test_a_data_yaml_gives_a_config_its_class_count_as_eval_data_does(shapes, yolo_shapes, tmp_path):
    """evaluate("yolo_n_coco", CKPT, data="data.yaml") of a run trained with --data data.yaml: the config's
    num_classes (80 there) becomes the yaml's before the model is built, as `detkit eval ... --data` does."""
    from detkit.config import dump_config

    cfg = copy.deepcopy(shapes["model"].cfg)
    cfg["model"]["num_classes"] = 7  # the recipe's own class count, not the checkpoint's 4
    recipe = tmp_path / "recipe.yaml"
    dump_config(cfg, recipe)
    ckpt, data = shapes["checkpoint"], str(yolo_shapes)
    with pytest.raises(CheckpointMismatchError):  # (the config alone: 7 classes against the checkpoint's 4)
        detkit.evaluate(cfg, ckpt, device="cpu")
    metrics = detkit.evaluate(cfg, ckpt, data=data, device="cpu")
    assert "bbox/AP" in metrics and metrics == detkit.evaluate(None, ckpt, data=data, device="cpu")
    assert detkit.evaluate(str(recipe), ckpt, data=data, device="cpu") == metrics  # a config file too
    assert cfg["model"]["num_classes"] == 7  # the dict given is not modified
