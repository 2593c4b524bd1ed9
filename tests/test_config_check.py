"""Every key and value of a config is checked: unknown keys, bad values, old spellings, named with their file."""

from pathlib import Path

import pytest
import yaml

from detkit.config import ConfigError, load_config
from detkit.config_check import OPTION_PARAMS, accepted, check_config
from detkit.engine.defaults import resolve_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "detkit" / "configs"
FASTER = CONFIGS / "faster_rcnn" / "faster_rcnn_r18_fpn_shapes.yaml"
YOLO = CONFIGS / "yolo" / "yolo_n_shapes.yaml"
YOLO_SEG = CONFIGS / "yolo" / "yolo_n_seg_shapes.yaml"


def user_config(tmp_path, base: Path, text: str) -> Path:
    """A user's config file inheriting ``base`` with ``text`` (YAML) on top."""
    path = tmp_path / "my_config.yaml"
    data = yaml.safe_load(text) or {}
    path.write_text(yaml.safe_dump({"_base_": [str(base)], **data}, sort_keys=False))
    return path


def error_of(path: Path, overrides=None) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(path, overrides)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize(
    "base, text, expected",
    [
        (FASTER, "model: {num_clases: 3}", "unknown key 'model.num_clases' (nearest valid: 'model.num_classes')"),
        (FASTER, "model: {backbone: {dept: 18}}", "'model.backbone.dept' (nearest valid: 'model.backbone.depth')"),
        (FASTER, "model: {box_head: {represntation_size: 64}}", "'model.box_head.represntation_size' (nearest"),
        (FASTER, "model: {preprocess: {size_divisr: 32}}", "'model.preprocess.size_divisr' (nearest"),
        (FASTER, "data: {num_worker: 2}", "'data.num_worker' (nearest valid: 'data.num_workers')"),
        (FASTER, "data: {train: {img_dri: x}}", "'data.train.img_dri' (nearest valid: 'data.train.img_dir')"),
        (FASTER, "data: {val: {pipeline: [{type: ResizeShortestEdge, short_size: [9]}]}}", ".0.short_sizes'"),
        (FASTER, "data: {train: {pipeline: [{type: HorizontalFlip, prob: 0.5}]}}", "'data.train.pipeline.0.p'"),
        (FASTER, "train: {max_epoch: 3}", "'train.max_epoch' (nearest valid: 'train.max_epochs')"),
        (FASTER, "train: {ema: {decya: 0.9}}", "'train.ema.decya' (nearest valid: 'train.ema.decay')"),
        (FASTER, "optimizer: {weight_decy: 0.1}", "'optimizer.weight_decy' (nearest valid: 'optimizer.weight_decay')"),
        (FASTER, "scheduler: {warmup_iter: 3}", "'scheduler.warmup_iter' (nearest valid: 'scheduler.warmup_iters')"),
        (YOLO, "data: {train: {mosaic: {prob: 1.0}}}", "'data.train.mosaic.prob' (nearest valid: 'data.train.mosaic.p"),
        (YOLO, "data: {train: {dataset: {with_mask: true}}}", "unknown key 'data.train.dataset.with_mask' (nearest"),
        (YOLO, "data: {train: {skip_bad_images: false}}", "write 'data.train.dataset.skip_bad_images'"),
        (YOLO, "data: {train: {pipeline: [{type: BboxParams, min_visiblity: 0.1}]}}", ".0.min_visibility')"),
        (YOLO_SEG, "model: {head: {det: {topk_: 10}}}", "(nearest valid: 'model.head.det.topk')"),
        # old spellings of the test settings: the new key is named
        (FASTER, "model: {box_head: {score_thresh: 0.1}}", "'model.box_head.score_thresh' is an old spelling: write"),
        (FASTER, "model: {box_head: {nms_thresh: 0.4}}", "old spelling: write 'model.box_head.nms_thr'"),
        (FASTER, "model: {rpn_head: {nms_thresh: 0.6}}", "old spelling: write 'model.rpn_head.nms_thr'"),
        (FASTER, "model: {box_head: {detections_per_img: 50}}", "old spelling: write 'model.box_head.max_per_img'"),
        (YOLO, "model: {head: {max_det: 50}}", "'model.head.max_det' is an old spelling: write 'model.head.max_per"),
        (YOLO, "model: {head: {conf_thres: 0.25}}", "old spelling: write 'model.head.score_thr'"),
        (YOLO_SEG, "model: {head: {det: {score_thresh: 0.1}}}", "old spelling: write 'model.head.det.score_thr'"),
    ],
)
def test_unknown_key_in_every_section_names_key_file_and_fix(tmp_path, base, text, expected):
    msg = error_of(user_config(tmp_path, base, text))
    assert msg.startswith(f"{tmp_path / 'my_config.yaml'}: ") and expected in msg


def test_unknown_top_level_section(tmp_path):
    msg = error_of(user_config(tmp_path, FASTER, "evaluaton: {interval: 1}"))  # (MMDetection's evaluation is answered)
    assert "unknown top-level section 'evaluaton'" in msg and "my_config.yaml" in msg
    assert "model, data, train, optimizer, scheduler" in msg


@pytest.mark.parametrize(
    "text, expected",
    [
        ("model: {backbone: {type: Resnet}}", "unknown backbone 'Resnet' (nearest: 'ResNet'"),
        ("data: {train: {type: CocoDatset}}", "unknown dataset 'CocoDatset' (nearest: 'CocoDataset'"),
        ("data: {train: {pipeline: [{type: HorizontalFlp}]}}", "unknown transform 'HorizontalFlp'"),
        ("model: {neck: 3}", "model.neck must be a neck spec"),
    ],
)
def test_unknown_part_types(tmp_path, text, expected):
    assert expected in error_of(user_config(tmp_path, FASTER, text))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("train: {max_epochs: 1.5}", "train.max_epochs must be an integer >= 1, got 1.5"),
        ("train: {max_epochs: 2.0}", "train.max_epochs must be an integer >= 1, got 2.0"),
        ("train: {accumulate: 0}", "train.accumulate must be an integer >= 1, got 0"),
        ("train: {amp: 'yes'}", "train.amp must be one of: false, true, 'fp16', 'bf16', 'fp32' or null, got 'yes'"),
        ("train: {tensorboard: 1}", "train.tensorboard must be true or false, got 1"),
        ("train: {grad_clip: 0}", "train.grad_clip must be a number > 0 or null, got 0"),
        ("train: {ema: {decay: 2}}", "train.ema.decay must be a number in [0, 1], got 2"),
        ("train: {ema: true}", "train.ema must be a mapping or null, got true"),
        ("optimizer: {lr: '0.01'}", "optimizer.lr must be a number > 0, got '0.01'"),
        ("optimizer: {eps: 1e-8}", "got '1e-8' (YAML reads 1e-8 as text: write 1.0e-08)"),
        ("optimizer: {lr: 1.0e5}", "(YAML reads 1.0e5 as text: write 100000.0)"),  # YAML 1.1: no sign, text
        ("train: {grad_clip: inf}", "(YAML reads inf as text: write .inf)"),
        ("optimizer: {eps: -1.0e-08}", "optimizer.eps must be a number > 0, got -1.0e-08"),  # as YAML reads it
        ("train: {grad_clip: -.inf}", "train.grad_clip must be a number > 0 or null, got -.inf"),
        ("data: {batch_size: '8'}", "got '8' (read as text: write 8 without quotes)"),
        ("data: {batch_size: 1e2}", "(YAML reads 1e2 as text: write 100)"),
        ("optimizer: {betas: [0.9]}", "optimizer.betas must be a list of 2 numbers in [0, 1], got [0.9]"),
        ("optimizer: {type: sgd}", "optimizer.type must be one of: 'SGD', 'AdamW', 'Adam', got 'sgd'"),
        ("scheduler: {milestones: [8.5]}", "scheduler.milestones must be a list of integers >= 0 or null"),
        ("scheduler: {type: step}", "scheduler.type must be one of"),
        ("data: {batch_size: 0}", "data.batch_size must be an integer >= 1, got 0"),
        ("data: {batch_size: 2.0}", "data.batch_size must be an integer >= 1, got 2.0"),
        ("data: {num_workers: -1}", "data.num_workers must be an integer >= 0, got -1"),
        ("data: {train: {filter_empty: 'no'}}", "data.train.filter_empty must be true or false, got 'no'"),
        ("model: {num_classes: 0}", "model.num_classes must be an integer >= 1 or null, got 0"),
        ("model: {box_head: {score_thr: 1.5}}", "model.box_head.score_thr must be a number in [0, 1], got 1.5"),
        ("model: {box_head: {nms_thr: -0.1}}", "model.box_head.nms_thr must be a number in [0, 1], got -0.1"),
        ("model: {box_head: {max_per_img: 0}}", "model.box_head.max_per_img must be an integer >= 1, got 0"),
        ("model: {box_head: {max_per_img: 10.5}}", "must be an integer >= 1, got 10.5"),
        ("model: {backbone: {depth: '18'}}", "model.backbone.depth must be an integer, got '18'"),
        ("model: {backbone: {out_indices: 3}}", "model.backbone.out_indices must be a list of integers, got 3"),
        ("model: {preprocess: {pixel_mean: 0.5}}", "model.preprocess.pixel_mean must be a list of numbers"),
        ("seed: 1.5", "seed must be an integer >= 0, got 1.5"),
    ],
)
def test_bad_values_name_key_rule_and_value(tmp_path, text, expected):
    msg = error_of(user_config(tmp_path, FASTER, text))
    assert expected in msg and msg.startswith(str(tmp_path / "my_config.yaml"))


def test_yolo_mix_options_checked(tmp_path):
    msg = error_of(user_config(tmp_path, YOLO, "data: {train: {mosaic: {p: 1.5}, close_mosaic: {epochs: 1.5}}}"))
    assert "data.train.mosaic.p must be a number in [0, 1], got 1.5" in msg
    assert "data.train.close_mosaic.epochs must be an integer >= 0, got 1.5" in msg
    assert msg.startswith("2 problems: ")


def test_key_from_a_base_file_names_that_file(tmp_path):
    (tmp_path / "mine").mkdir()
    base = tmp_path / "mine" / "my_base.yaml"
    base.write_text("data:\n  num_worker: 1\ntrain:\n  accumulate: 0\n")
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"_base_: [{FASTER}, mine/my_base.yaml]\ntrain: {{max_epochs: 2}}\n")
    msg = error_of(cfg)
    assert f"{base}: unknown key 'data.num_worker' (nearest valid: 'data.num_workers')" in msg
    assert f"{base}: train.accumulate must be an integer >= 1, got 0" in msg
    assert "exp.yaml" not in msg
    cfg.write_text(f"_base_: [{FASTER}, mine/my_base.yaml]\ntrain: {{accumulate: 2}}\ndata: {{num_worker: null}}\n")
    assert "train.accumulate" not in error_of(cfg)  # the child's value is the one that runs


def test_relative_base_named_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "b.yaml").write_text("train: {max_epochs: 1.5}\n")
    (tmp_path / "c.yaml").write_text("_base_: [b.yaml]\n")
    assert error_of(Path("c.yaml")) == "b.yaml: train.max_epochs must be an integer >= 1, got 1.5"


def test_set_typo_wrong_value_and_added_key(tmp_path):
    for key in ("train.max_epoch=3", "+train.max_epoch=3"):
        assert error_of(FASTER, [key]) == "--set: unknown key 'train.max_epoch' (nearest valid: 'train.max_epochs')"
    assert error_of(FASTER, ["train.max_epochs=1.5"]) == "--set: train.max_epochs must be an integer >= 1, got 1.5"
    msg = error_of(FASTER, ["model.box_head.score_thresh=0.1"])
    assert msg.startswith("--set: 'model.box_head.score_thresh' is an old spelling: write 'model.box_head.score_thr'")
    assert "--set: unknown top-level section 'evalution'" in error_of(FASTER, ["evalution.interval=1"])
    assert "--set: unknown key 'model.foo'" in error_of(FASTER, ["model.foo.bar=1"])
    # a valid key that the files lack is set as written, with or without '+'
    cfg = load_config(
        FASTER, ["data.val_batch_size=2", "+model.backbone.zero_init_residual=true", "model.box_head.score_thr=0.3"]
    )
    assert cfg["data"]["val_batch_size"] == 2 and cfg["model"]["box_head"]["score_thr"] == 0.3
    assert cfg["model"]["backbone"]["zero_init_residual"] is True


def test_many_problems_on_one_line(tmp_path):
    text = "train: {max_epochs: 1.5, accumulate: 0, amp: 2}\ndata: {batch_size: 0}\noptimizer: {lr: 0}\n"
    msg = error_of(user_config(tmp_path, FASTER, text))
    assert msg.startswith("5 problems: ") and msg.count("my_config.yaml") == 5


def test_config_file_untouched_by_a_failed_load(tmp_path):
    path = user_config(tmp_path, FASTER, "train: {max_epochs: 1.5}")
    before = path.read_bytes()
    error_of(path, ["+data.foo=1"])
    assert path.read_bytes() == before


def test_python_api_gets_the_engine_checks():
    """Trainer(cfg) calls resolve_config: a dict built in Python is checked too (no file to name)."""
    with pytest.raises(ConfigError, match=r"^train.max_epochs must be an integer >= 1, got 1.5$"):
        resolve_config({"train": {"max_epochs": 1.5}})
    with pytest.raises(ConfigError, match=r"train.accumulate must be an integer >= 1, got 0"):
        resolve_config({"train": {"accumulate": 0}})
    with pytest.raises(ConfigError, match=r"unknown key 'optimizer.momentun' \(nearest valid: 'optimizer.momentum'\)"):
        resolve_config({"optimizer": {"momentun": 0.9}})
    resolved = resolve_config({"train": {"max_epochs": 3}, "data": {}})
    assert resolved["train"]["accumulate"] == 1 and resolved["seed"] == 0


def test_check_config_without_sources_and_partial_configs():
    model = {"type": "OneStageDetector", "backbone": {"type": "CSPDarknet"}, "neck": None, "head": {"type": "YOLOHead"}}
    check_config({"model": model})
    with pytest.raises(ConfigError, match=r"^model.head must be a head spec"):
        check_config({"model": {**model, "head": 1}})
    check_config({"data": {"val": None}})  # `--set data.val=null` means no validation set


def test_mix_option_tables_match_mix_dataset():
    """The key tables of MixDataset's mosaic / mixup / close_mosaic agree with what MixDataset accepts."""
    from detkit.data.datasets.mix import MixDataset

    class Inner:
        pipeline = None

        def __len__(self):
            return 4

    values = {"p": 0.5, "size": 64, "center_range": [0.3, 0.7], "min_visibility": 0.2, "alpha": 8.0, "epochs": 1}
    values["max_epochs"] = 10
    for (_registry, owner, param), rule in OPTION_PARAMS.items():
        if owner != "MixDataset":
            continue
        for key in rule.fields:
            MixDataset(dataset=Inner(), size=64, **{param: {key: values[key]}})
        with pytest.raises(ValueError, match="unknown key"):
            MixDataset(dataset=Inner(), size=64, **{param: {"not_a_key": 1}})


def test_bbox_params_keys_match_the_pipeline_builder():
    import inspect

    import albumentations as A

    from detkit.data.transforms import build_transforms
    from detkit.pipeline_check import BBOX_FIXED

    for name, param in inspect.signature(A.BboxParams).parameters.items():
        if name not in BBOX_FIXED:
            build_transforms([{"type": "BboxParams", name: param.default}, {"type": "HorizontalFlip"}])
    with pytest.raises(ValueError):
        build_transforms([{"type": "BboxParams", "format": "coco"}])


def test_registered_parts_have_readable_type_hints():
    """A hint that does not evaluate would switch the value checks of that part off silently."""
    import detkit.data.datasets  # noqa: F401
    import detkit.data.transforms  # noqa: F401
    import detkit.models  # noqa: F401
    from detkit.registry import BACKBONES, DATASETS, DETECTORS, HEADS, NECKS, TRANSFORMS

    for registry in (BACKBONES, NECKS, HEADS, DETECTORS, DATASETS, TRANSFORMS):
        for name in registry:
            if not registry.get(name).__module__.startswith("detkit."):
                continue  # parts that tests register
            params, _, hints = accepted(registry.get(name))
            assert set(params) <= set(hints), f"{registry.name} {name}: missing hints {set(params) - set(hints)}"


def test_docs_list_every_rule_and_old_spelling():
    from detkit.config_check import DATA_RULES
    from detkit.config_rules import PARAM_RULES, RENAMED_KEYS
    from detkit.engine.defaults import SECTION_RULES

    doc = (ROOT / "docs" / "configs.md").read_text()
    keys = [k for rules in (*SECTION_RULES.values(), DATA_RULES, PARAM_RULES) for k in rules]
    missing = [k for k in [*keys, *RENAMED_KEYS] if f"`{k}`" not in doc and f"`data.{k}`" not in doc]
    assert not missing, f"docs/configs.md does not mention {missing}"


def test_keys_unpacked_from_a_typeddict_are_checked():
    """Decode heads take their loss keys as ``**loss: Unpack[SegLossKeys]``: a typo or a bad value is still caught."""
    with pytest.raises(
        ConfigError, match=r"unknown key 'model.decode_head.dice_wieght'.*'model.decode_head.dice_weight'"
    ):
        load_config("configs/seg/semfpn_r18_shapes.yaml", ["+model.decode_head.dice_wieght=0.5"])
    with pytest.raises(ConfigError, match=r"model.decode_head.dice_weight must be a number"):
        load_config("configs/seg/semfpn_r18_shapes.yaml", ["model.decode_head.dice_weight=abc"])
    load_config("configs/seg/semfpn_r18_shapes.yaml", ["model.decode_head.dice_weight=0.5"])


def test_an_unknown_key_beside_a_malformed_part_is_still_one_config_error(tmp_path):
    msg = error_of(user_config(tmp_path, FASTER, "model: {depth: 18, backbone: {type: [ResNet]}}"))
    assert "unknown key 'model.depth'" in msg and "model.backbone must be a backbone spec" in msg


@pytest.mark.parametrize(
    "override, message",
    [
        ("optimizer.momentum=0.5", "optimizer.momentum: 0.5 is not used by optimizer type AdamW (only by SGD)"),
        ("optimizer.nesterov=true", "optimizer.nesterov: true is not used by optimizer type AdamW"),
        ("scheduler.milestones=[1, 2]", "scheduler.milestones: [1, 2] is not used by scheduler type linear"),
        ("scheduler.gamma=0.5", "scheduler.gamma: 0.5 is not used by scheduler type linear (only by multistep)"),
        ("scheduler.warmup_momentum=0.8", "scheduler.warmup_momentum: 0.8 is not used by optimizer type AdamW"),
    ],
)
def test_a_key_the_chosen_type_does_not_read_is_named(override, message):
    """Training refuses them (Trainer, before the data is read); loading (e.g. for inference) does not."""
    from detkit.config import load_config
    from detkit.engine.optim import unused_type_keys

    cfg = load_config("yolo_n_shapes", [override])  # loads: an old run's stored config stays usable
    assert [m for _, m in unused_type_keys(cfg)] and message in unused_type_keys(cfg)[0][1]
    section = override.split(".")[0]
    other = {"optimizer": ["optimizer.type=SGD"], "scheduler": ["scheduler.type=multistep"]}[section]
    if "warmup_momentum" in override:
        other = ["optimizer.type=SGD"]
    elif section == "scheduler":  # the base's linear schedule sets min_lr_ratio, which multistep does not read
        (problem,) = unused_type_keys(load_config("yolo_n_shapes", [*other, override]))
        assert "min_lr_ratio: 0.05" in problem[1] and "remove it (or set it to 0.0)" in problem[1]
        other.append("scheduler.min_lr_ratio=0.0")
    assert not unused_type_keys(load_config("yolo_n_shapes", [*other, override]))  # the type that reads it
    assert not unused_type_keys(load_config("yolo_n_shapes", ["optimizer.momentum=0.9", "scheduler.milestones=[]"]))


def test_an_lr_mult_prefix_that_names_no_parameter_is_an_error():
    import detkit
    from detkit.config import load_config
    from detkit.engine.optim import param_groups

    cfg = load_config("yolo_n_shapes")
    model = detkit.build_model(cfg, class_names=["a"])
    groups = param_groups(model, {**cfg["optimizer"], "lr_mult": {"backbone": 0.1}})
    assert {g["lr_mult"] for g in groups} == {0.1, 1.0}
    with pytest.raises(ValueError, match=r"'backbon' is the prefix of no trainable parameter, .*nearest: backbone"):
        param_groups(model, {**cfg["optimizer"], "lr_mult": {"backbon": 0.1}})
