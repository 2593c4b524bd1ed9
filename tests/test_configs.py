"""Every YAML config under configs/ loads, passes the config check and builds its model."""

from pathlib import Path

import pytest
import torch
import yaml

from detkit.config import dump_config, load_config
from detkit.config_check import check_config
from detkit.engine.defaults import SECTION_RULES, SECTIONS, resolve_config
from detkit.models.build import build_model

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if "_base_" not in p.parts)
FRAGMENTS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if "_base_" in p.parts)


def test_configs_exist():
    names = {p.relative_to(ROOT / "configs").as_posix() for p in CONFIGS}
    for required in (
        "faster_rcnn/faster_rcnn_r50_fpn_1x_coco.yaml",
        "mask_rcnn/mask_rcnn_r50_fpn_1x_coco.yaml",
        "faster_rcnn/faster_rcnn_r18_fpn_shapes.yaml",
        "mask_rcnn/mask_rcnn_r18_fpn_shapes.yaml",
        *(f"yolo/yolo_{s}_coco.yaml" for s in "nsml"),
        "yolo/yolo_n_seg_coco.yaml",
        "yolo/yolo_s_seg_coco.yaml",
        "yolo/yolo_n_shapes.yaml",
        "yolo/yolo_n_seg_shapes.yaml",
    ):
        assert required in names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(ROOT / "configs").as_posix())
def test_config_builds(path):
    cfg = load_config(path)
    for key in ("model", "data", "train", "optimizer", "scheduler"):
        assert key in cfg, f"{path}: missing section {key}"
    for split in ("train", "val"):
        assert {"ann_file", "img_dir"} <= set(cfg["data"][split]) or "mask_dir" in cfg["data"][split]
    names = None if cfg["model"].get("num_classes") else ["a", "b", "c"]
    model = build_model(cfg, class_names=names)
    assert isinstance(model, torch.nn.Module)
    assert model.num_classes == len(model.class_names)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(ROOT / "configs").as_posix())
def test_schedule_keys_survive_the_runtime_defaults(path):
    """runtime.yaml holds every engine default: listed after a schedule it would reset that schedule's
    max_epochs / grad_clip / ema (it did, silently, for the YOLO configs). A key a base sets reaches the config."""
    raw = yaml.safe_load(path.read_text())
    bases = [b for b in raw.get("_base_", []) if isinstance(b, str)]
    if any(b.endswith("runtime.yaml") for b in bases):
        assert bases[0].endswith("runtime.yaml"), f"{path}: list runtime.yaml first in _base_"
    cfg = load_config(path)
    for b in bases:
        if b.endswith("runtime.yaml"):
            continue
        base_train = load_config(path.parent / b).get("train") or {}
        own_train = raw.get("train") or {}
        for key, value in base_train.items():
            if key not in own_train:
                assert cfg["train"][key] == value, f"{path}: train.{key} from {b} was overridden"


@pytest.mark.parametrize("path", FRAGMENTS, ids=lambda p: p.relative_to(ROOT / "configs").as_posix())
def test_base_fragments_pass_the_check(path):
    """Each _base_ file alone holds only valid keys and values (load_config checks what is present)."""
    assert load_config(path)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(ROOT / "configs").as_posix())
def test_resolved_config_written_by_training_passes_the_check(path, tmp_path):
    """The work dir's config.yaml (engine defaults filled in) loads again, e.g. for tools/eval.py."""
    dump_config(resolve_config(load_config(path)), tmp_path / "config.yaml")
    check_config(load_config(tmp_path / "config.yaml"))


@pytest.mark.parametrize("section", list(SECTIONS))
def test_every_engine_default_has_a_rule_and_obeys_it(section):
    defaults, rules = SECTIONS[section], SECTION_RULES[section]
    assert set(defaults) == set(rules), f"{section}: keys with a default but no rule or a rule but no default"
    for key, value in defaults.items():
        assert rules[key].problem(value) is None, f"{section}.{key}: default {value!r} breaks its own rule"
