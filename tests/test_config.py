import pytest
import yaml

from detkit.config import (
    ConfigError,
    apply_overrides,
    dump_config,
    load_config,
    load_config_with_sources,
    merge,
    set_by_path,
)


def write(path, data):
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_merge_dicts_deep_lists_replace():
    a = {"x": {"y": 1, "z": [1, 2]}, "k": 1}
    b = {"x": {"z": [3], "w": 2}}
    m = merge(a, b)
    assert m == {"x": {"y": 1, "z": [3], "w": 2}, "k": 1}
    assert a["x"]["z"] == [1, 2]  # inputs untouched


def test_base_inheritance_relative_paths(tmp_path):
    (tmp_path / "_base_").mkdir()
    write(tmp_path / "_base_" / "model.yaml", {"model": {"type": "A", "depth": 50, "out": [1, 2, 3]}})
    write(tmp_path / "_base_" / "data.yaml", {"data": {"batch_size": 2}, "seed": 0})
    sub = tmp_path / "exp"
    sub.mkdir()
    write(
        sub / "cfg.yaml",
        {"_base_": ["../_base_/model.yaml", "../_base_/data.yaml"], "model": {"depth": 18, "out": [4]}, "seed": 3},
    )
    cfg = load_config(sub / "cfg.yaml", check=False)  # merging only: 'A' is no registered detector
    assert cfg == {"model": {"type": "A", "depth": 18, "out": [4]}, "data": {"batch_size": 2}, "seed": 3}


def _chain(tmp_path, n):
    """c0.yaml <- c1.yaml <- ... <- c{n}.yaml: c{n} inherits n levels deep."""
    write(tmp_path / "c0.yaml", {"v0": 0})
    for i in range(1, n + 1):
        write(tmp_path / f"c{i}.yaml", {"_base_": [f"c{i - 1}.yaml"], f"v{i}": i})
    return tmp_path / f"c{n}.yaml"


def test_four_levels_allowed_five_refused_with_the_fix(tmp_path):
    assert load_config(_chain(tmp_path, 4), check=False) == {f"v{i}": i for i in range(5)}
    with pytest.raises(ConfigError, match="deeper than 4 levels .*copy the keys of a file in the middle"):
        load_config(_chain(tmp_path, 5), check=False)


def test_packaged_configs_inherit_at_most_two_levels():
    """DESIGN.md: a config inherits at most two levels deep; a user's config may then name any packaged one."""
    from detkit.config import packaged_configs

    def depth(path):
        bases = (yaml.safe_load(path.read_text()) or {}).get("_base_") or []
        return max((1 + depth(path.parent / b) for b in ([bases] if isinstance(bases, str) else bases)), default=0)

    deep = {name: depth(p) for name, p in packaged_configs().items() if depth(p) > 2}
    assert not deep


def test_a_packaged_config_as_base_by_path_or_by_name(tmp_path):
    from detkit.config import packaged_configs

    for base in (str(packaged_configs()["mask_rcnn_r18_fpn_shapes"]), "mask_rcnn_r18_fpn_shapes"):
        write(tmp_path / "mine.yaml", {"_base_": [base], "train": {"max_epochs": 3}})
        cfg = load_config(tmp_path / "mine.yaml")
        assert cfg["train"]["max_epochs"] == 3 and cfg["model"]["mask_head"]["type"] == "RoIMaskHead"
    write(tmp_path / "mine.yaml", {"_base_": ["mask_rcnn_r18_fpn_shapez"]})
    with pytest.raises(
        ConfigError,
        match="_base_ file not found: mask_rcnn_r18_fpn_shapez .*nearest packaged config is 'mask_rcnn_r18_fpn_shapes'",
    ):
        load_config(tmp_path / "mine.yaml")


def test_missing_file_and_cycle(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    write(tmp_path / "a.yaml", {"_base_": ["missing.yaml"]})
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_config(tmp_path / "a.yaml")
    write(tmp_path / "a.yaml", {"_base_": ["b.yaml"]})
    write(tmp_path / "b.yaml", {"_base_": ["a.yaml"]})
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")


def test_overrides_parse_yaml_and_check_keys():
    cfg = {"train": {"max_epochs": 12, "amp": False}, "data": {"train": {"ann_file": "a.json"}}}
    out = apply_overrides(cfg, ["train.max_epochs=24", "train.amp=true", "data.train.ann_file=b.json"])
    assert out["train"] == {"max_epochs": 24, "amp": True}
    assert out["data"]["train"]["ann_file"] == "b.json"
    assert cfg["train"]["max_epochs"] == 12
    with pytest.raises(ConfigError, match="nearest existing key: 'train.max_epochs'"):
        apply_overrides(cfg, ["train.max_epoch=3"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides(cfg, ["train.max_epochs"])
    added = apply_overrides(cfg, ["+train.tensorboard=true", "+optimizer.lr=0.01"])
    assert added["train"]["tensorboard"] is True and added["optimizer"] == {"lr": 0.01}
    lst = apply_overrides({"a": [1, 2]}, ["a=[3, 4, 5]"])
    assert lst["a"] == [3, 4, 5]


def test_safe_load_refuses_python_objects(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("x: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(p)


def test_binary_config_is_named_as_such(tmp_path):
    zipped = tmp_path / "best.pth"
    zipped.write_bytes(b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(range(128, 256)))
    control = tmp_path / "control.yaml"
    control.write_bytes(b"seed: 1\nname: \x01\x02\n")
    for path in (zipped, control):
        with pytest.raises(ConfigError, match=r"is not a YAML text file \(binary; a checkpoint\? the order is CONFIG"):
            load_config(path)


def test_dump_roundtrip(tmp_path):
    cfg = {"model": {"type": "A", "sizes": [[32], [64]]}, "lr": 0.02, "name": None}
    dump_config(cfg, tmp_path / "out" / "config.yaml")
    assert load_config(tmp_path / "out" / "config.yaml", check=False) == cfg


def test_sources_name_the_file_that_set_each_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path / "a.yaml", {"train": {"max_epochs": 3, "amp": False}, "data": {"pipeline": [{"type": "X", "p": 1}]}}
    )
    write(tmp_path / "b.yaml", {"train": {"amp": True}})
    write(
        tmp_path / "c.yaml",
        {"_base_": ["a.yaml", "b.yaml"], "train": {"accumulate": 2}, "data": {"pipeline": [{"type": "Y"}]}},
    )
    cfg, sources = load_config_with_sources(tmp_path / "c.yaml", ["train.max_epochs=5", "+seed=1"])
    assert cfg["train"] == {"max_epochs": 5, "amp": True, "accumulate": 2}
    assert sources[("train", "amp")] == "b.yaml"  # the later base wins, as in the merge
    assert sources[("train", "accumulate")] == "c.yaml"
    assert sources[("train", "max_epochs")] == sources[("seed",)] == "--set"
    assert sources[("data", "pipeline", 0, "type")] == "c.yaml"  # a list replaces as a whole
    assert ("data", "pipeline", 0, "p") not in sources  # a.yaml's item was replaced
    assert cfg["data"]["pipeline"] == [{"type": "Y"}]


def test_set_by_path_returns_the_key_path():
    cfg = {"data": {"train": {"pipeline": [{"type": "A", "p": 0.5}]}}}
    assert set_by_path(cfg, "data.train.pipeline.0.p", 1.0) == ("data", "train", "pipeline", 0, "p")
    assert cfg["data"]["train"]["pipeline"][0]["p"] == 1.0
    assert set_by_path(cfg, "+data.val.img_dir", "v") == ("data", "val", "img_dir")


def test_set_old_spelling_names_the_new_key():
    cfg = {"model": {"box_head": {"score_thr": 0.05}}}
    with pytest.raises(ConfigError, match=r"old spelling; write 'model.box_head.score_thr'"):
        apply_overrides(cfg, ["model.box_head.score_thresh=0.1"])
    with pytest.raises(ConfigError, match=r"write 'model.box_head.max_per_img'"):
        apply_overrides(cfg, ["model.box_head.detections_per_img=10"])


def test_delete_replaces_an_inherited_section(tmp_path):
    write(tmp_path / "base.yaml", {"model": {"neck": {"type": "FPN", "extra": "maxpool", "out_channels": 128}, "k": 1}})
    write(tmp_path / "mine.yaml", {"_base_": ["base.yaml"], "model": {"neck": {"_delete_": True, "type": "PAFPN"}}})
    assert load_config(tmp_path / "mine.yaml", check=False) == {"model": {"neck": {"type": "PAFPN"}, "k": 1}}
    write(tmp_path / "mine.yaml", {"_base_": ["base.yaml"], "model": {"neck": {"_delete_": False, "type": "PAFPN"}}})
    assert load_config(tmp_path / "mine.yaml", check=False)["model"]["neck"] == {
        "type": "PAFPN",
        "extra": "maxpool",
        "out_channels": 128,
    }
    write(tmp_path / "mine.yaml", {"_base_": ["base.yaml"], "model": {"neck": {"_delete_": "yes"}}})
    with pytest.raises(ConfigError, match="_delete_ must be true or false, got 'yes'"):
        load_config(tmp_path / "mine.yaml", check=False)


def test_delete_lets_a_checked_config_swap_a_part_type(tmp_path):
    """docs/configs.md's example: YOLO's PAFPN for an FPN in a file; without _delete_ the base's num_blocks would
    be an unknown key of FPN. The model builds and its parts fit."""
    import detkit
    from detkit.models.fit_check import check_parts_fit

    neck = {"_delete_": True, "type": "FPN", "out_channels": 64, "extra": None}
    write(tmp_path / "mine.yaml", {"_base_": ["yolo_n_shapes"], "model": {"neck": neck}})
    cfg = load_config(tmp_path / "mine.yaml")
    assert cfg["model"]["neck"] == {"type": "FPN", "out_channels": 64, "extra": None}
    check_parts_fit(detkit.build_model(cfg, class_names=["a", "b"]))
    del neck["_delete_"]
    write(tmp_path / "mine.yaml", {"_base_": ["yolo_n_shapes"], "model": {"neck": neck}})
    with pytest.raises(ConfigError, match="model.neck.num_blocks"):
        load_config(tmp_path / "mine.yaml")


def test_set_into_a_list_or_a_null_section_says_how():
    cfg = {"data": {"train": {"pipeline": [{"type": "A", "p": 0.5}, {"type": "B"}]}, "val": None}}
    assert set_by_path(cfg, "data.train.pipeline.0.p", 0.3) == ("data", "train", "pipeline", 0, "p")
    for key in ("data.train.pipeline.5.p", "+data.train.pipeline.5.p", "data.train.pipeline.p"):
        with pytest.raises(ConfigError, match=r"'data.train.pipeline' is a list of 2 item\(s\) \(indices 0..1\)"):
            set_by_path(cfg, key, 0.3)
    with pytest.raises(ConfigError, match=r"'data.val' is null in the config; give the whole section"):
        set_by_path(cfg, "data.val.ann_file", "v.json")


def test_a_key_given_twice_is_refused(tmp_path):
    write(tmp_path / "dup.yaml", "model:\n  num_classes: 3\n  num_classes: 4\n")
    with pytest.raises(ConfigError, match=r"key 'num_classes' is given twice in one mapping \(lines 2 and 3\)"):
        load_config(tmp_path / "dup.yaml", check=False)
    write(tmp_path / "merge.yaml", "a: &x {k: 1}\nb:\n  <<: *x\n  j: 2\n")  # YAML merge keys stay allowed
    assert load_config(tmp_path / "merge.yaml", check=False)["b"] == {"k": 1, "j": 2}


def test_set_into_a_value_and_delete_at_the_top_are_named(tmp_path):
    cfg = {"optimizer": {"lr": 0.02}}
    with pytest.raises(ConfigError, match=r"'optimizer.lr' is a value \(0.02\), not a mapping"):
        set_by_path(cfg, "optimizer.lr.x", 1)
    write(tmp_path / "top.yaml", {"_delete_": True, "model": {}})
    with pytest.raises(ConfigError, match="_delete_ goes inside a section"):
        load_config(tmp_path / "top.yaml", check=False)


def test_set_functions_importable_from_detkit_config_whichever_module_comes_first():
    import subprocess
    import sys

    import detkit.config
    import detkit.config_overrides

    for name in ("apply_overrides", "set_by_path", "get_by_path"):
        assert getattr(detkit.config, name) is getattr(detkit.config_overrides, name)
    assert detkit.config_overrides.ConfigError is ConfigError  # raised by --set: still detkit.config's error
    for first in ("detkit.config_overrides", "detkit.config"):
        code = (
            f"import {first}; from detkit.config import set_by_path, get_by_path; print(get_by_path({{'a': 1}}, 'a'))"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and proc.stdout == "1\n", proc.stderr
