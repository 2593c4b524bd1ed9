"""The search-space file: parsed into parameters, each key and bound checked against the config before any trial;
every mistake is a SpaceError naming the file and the key."""

from __future__ import annotations

import optuna
import pytest

from detkit.config import ConfigError
from detkit.tune.space import SpaceError, apply_params, decode_params, grid_space, load_space


def _space(tmp_path, text: str):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_a_space_is_read_and_drawn(tmp_path, toy_cfg):
    path = _space(
        tmp_path,
        "optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n"
        "data.batch_size: {type: categorical, choices: [1, 2]}\n"
        "train.max_epochs: {type: int, low: 1, high: 5, step: 2}\n"
        "scheduler.milestones: {type: categorical, choices: [[1], [1, 2]]}\n",  # lists travel as JSON text
    )
    params = load_space(path, toy_cfg)
    assert [p.key for p in params] == [
        "optimizer.lr",
        "data.batch_size",
        "train.max_epochs",
        "scheduler.milestones",
    ]
    assert params[0].log and params[2].step == 2 and params[3].encoded and not params[1].encoded
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(8):
        trial = study.ask()
        values = {p.key: p.suggest(trial) for p in params}
        assert 1e-4 <= values["optimizer.lr"] <= 1e-2 and values["train.max_epochs"] in (1, 3, 5)
        assert values["scheduler.milestones"] in ([1], [1, 2]) and values["data.batch_size"] in (1, 2)
        assert decode_params(params, trial.params) == values
        cfg = apply_params(toy_cfg, values)
        assert cfg["scheduler"]["milestones"] == values["scheduler.milestones"]
        assert toy_cfg["optimizer"]["lr"] == 0.05  # the base config is not changed
        study.tell(trial, 0.0)
    assert grid_space(params[1:3], "s.yaml") == {"data.batch_size": [1, 2], "train.max_epochs": [1, 3, 5]}


def test_list_items_are_keys(tmp_path, toy_cfg):
    toy_cfg["scheduler"]["milestones"] = [1, 3]
    params = load_space(_space(tmp_path, "scheduler.milestones.1: {type: int, low: 2, high: 4}\n"), toy_cfg)
    assert apply_params(toy_cfg, {params[0].key: 4})["scheduler"]["milestones"] == [1, 4]
    with pytest.raises(SpaceError, match="'scheduler.milestones.2' is not a key of the config"):
        load_space(_space(tmp_path, "scheduler.milestones.2: {type: int, low: 2, high: 4}\n"), toy_cfg)


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "optimizer.lrr: {type: float, low: 0.001, high: 0.1}",
            "'optimizer.lrr' is not a key of the config (nearest: 'optimizer.lr')",
        ),
        (
            "optimizer.lr: {type: loguniform, low: 0.001, high: 0.1}",
            "'optimizer.lr': type must be one of float, int, categorical, got 'loguniform'",
        ),
        (
            "optimizer.lr: {type: float, low: 0.001, hi: 0.1}",
            "unknown field 'hi' for type float (nearest valid: 'high'",
        ),
        ("optimizer.lr: {type: float, low: 0.1, high: 0.001}", "'optimizer.lr': low 0.1 is above high 0.001"),
        ("optimizer.lr: {type: float, low: 0.0, high: 0.1, log: true}", "a log range needs low > 0"),
        (
            "optimizer.lr: {type: float, low: 1e-4, high: 0.1}",
            "low must be a number, got '1e-4' (a string: YAML reads 1e-4 as text",
        ),
        (
            "optimizer.lr: {type: float, low: 0.001, high: 0.1, log: true, step: 0.01}",
            "log and step cannot be combined",
        ),
        (
            "optimizer.lr: {type: float, low: -1.0, high: 0.1}",
            "'optimizer.lr': its low -1.0 is not a valid value: optimizer.lr must be a number > 0",
        ),
        (
            "train.max_epochs: {type: float, low: 1.0, high: 3.0}",
            "'train.max_epochs': its low 1.0 is not a valid value: train.max_epochs must be an integer",
        ),
        ("train.max_epochs: {type: int, low: 1, high: 4.5}", "'train.max_epochs': high must be an integer, got 4.5"),
        ("data.batch_size: {type: categorical, choices: []}", "choices must be a non-empty list"),
        (
            "data.batch_size: {type: categorical, choices: [2, 0]}",
            "its choice 0 is not a valid value: data.batch_size must be an integer >= 1",
        ),
        ("data.batch_size: {type: categorical, choices: [2, 2]}", "choices repeat a value"),
        ("optimizer.lr: 0.01", "'optimizer.lr': expected a distribution such as {type: float"),
        ("- optimizer.lr", "a search space is a mapping of config keys to distributions"),
        ("", "got nothing"),
        ("optimizer.lr: {type: float, low: [0.1, high: 1}", "not valid YAML"),
        (  # nested keys, as in a config: the dotted key to write
            "optimizer: {lr: {type: float, low: 0.001, high: 0.1}}",
            "'optimizer' nests its keys; a space writes each searched key dotted, as --set does: "
            "'optimizer.lr: {type: float, low: ..., high: ...}'",
        ),
        (
            "data:\n  batch_size: {type: categorical, choices: [1, 2]}",
            "'data.batch_size: {type: categorical, choices: [...]}'",
        ),
        # a config file given as --space
        ("_base_: [../_base_/runtime.yaml]\nseed: 0", "this looks like a config file, not a search space"),
        ("seed: 0\nmodel: {type: ToyDetector, num_classes: 2}", "this looks like a config file, not a search space"),
    ],
)
def test_a_bad_space_names_the_file_and_the_key(tmp_path, toy_cfg, text, message):
    path = _space(tmp_path, text + "\n")
    with pytest.raises(SpaceError) as e:
        load_space(path, toy_cfg)
    assert message in str(e.value) and str(path.name) in str(e.value)
    assert isinstance(e.value, ConfigError)  # the tools report it in one line, exit status 2


def test_grid_needs_finite_values(tmp_path, toy_cfg):
    params = load_space(_space(tmp_path, "optimizer.lr: {type: float, low: 0.01, high: 0.05}\n"), toy_cfg)
    with pytest.raises(SpaceError, match="'optimizer.lr': --sampler grid needs a finite set of values"):
        grid_space(params, "space.yaml")
    stepped = load_space(_space(tmp_path, "optimizer.lr: {type: float, low: 0.01, high: 0.05, step: 0.02}\n"), toy_cfg)
    assert grid_space(stepped, "space.yaml") == {"optimizer.lr": [0.01, 0.03, 0.05]}


@pytest.mark.parametrize(
    "text, message",
    [
        (  # the config check's own refusal, named with the parameter and the choice
            "optimizer.type: {type: categorical, choices: [SGD, Adamm]}",
            "'optimizer.type': its choice \"Adamm\" is not a valid value: optimizer.type must be one of: 'SGD'",
        ),
        (  # the Trainer's: the toy config's milestones [1] are read by multistep only
            "scheduler.type: {type: categorical, choices: [multistep, cosine]}",
            "'scheduler.type': its choice \"cosine\" is not a valid value: scheduler.milestones: [1] is not used by "
            "scheduler type cosine",
        ),
        (  # with the other searched keys drawn: AdamW never reads the momentum the space searches
            "optimizer.type: {type: categorical, choices: [SGD, AdamW]}\n"
            "optimizer.momentum: {type: float, low: 0.8, high: 0.95}",
            "'optimizer.type': its choice \"AdamW\" is not a valid value: optimizer.momentum: 0.8 is not used by "
            "optimizer type AdamW (only by SGD); remove it (or set it to 0.9), or choose optimizer.type SGD (with "
            "the searched optimizer.momentum 0.8)",
        ),
    ],
)
def test_a_choice_the_trial_checks_refuse_is_named_before_any_trial(tmp_path, toy_cfg, text, message):
    with pytest.raises(SpaceError) as e:
        load_space(_space(tmp_path, text + "\n"), toy_cfg)
    assert message in str(e.value) and "space.yaml" in str(e.value)


def test_choices_valid_with_some_draw_of_the_others_pass(tmp_path, toy_cfg):
    # momentum searched with SGD among the types; AdamW with the momentum at its default; cosine with no milestones
    space = (
        "optimizer.type: {type: categorical, choices: [SGD, AdamW]}\n"
        "optimizer.momentum: {type: categorical, choices: [0.9, 0.95]}\n"
        "scheduler.type: {type: categorical, choices: [multistep, cosine]}\n"
        "scheduler.milestones: {type: categorical, choices: [null, [1]]}\n"
    )
    assert len(load_space(_space(tmp_path, space), toy_cfg)) == 4
    # a stepped range holding the config's own momentum (0.9): the AdamW trials that draw it pass (the review)
    stepped = "optimizer.type: {type: categorical, choices: [SGD, AdamW]}\n" + (
        "optimizer.momentum: {type: float, low: 0.85, high: 0.95, step: 0.05}\n"
    )
    toy_cfg["optimizer"]["momentum"] = 0.9
    assert len(load_space(_space(tmp_path, stepped), toy_cfg)) == 2


def test_a_config_that_no_draw_can_fix_is_refused(tmp_path, toy_cfg):
    toy_cfg["scheduler"]["min_lr_ratio"] = 0.1  # not read by multistep: every trial's Trainer would refuse it
    with pytest.raises(SpaceError) as e:
        load_space(_space(tmp_path, "optimizer.lr: {type: float, low: 0.01, high: 0.05}\n"), toy_cfg)
    assert "every trial's config would fail its checks, whatever the space draws: scheduler.min_lr_ratio" in str(
        e.value
    )
    assert "'optimizer.lr'" not in str(e.value)  # not the searched value's fault
