"""``detkit.config_rules.show``: values in messages as YAML that reads back as the same value."""

from __future__ import annotations

import math

import pytest
import yaml

from detkit.config_rules import number, show, yaml_number


@pytest.mark.parametrize(
    "value",
    [
        0,
        -7,
        2**70,
        1e-8,
        -1.25e-8,
        0.1,
        100000.0,
        1e20,
        0.0,
        math.inf,
        -math.inf,
        True,
        False,
        None,
        "text",
        "it's",
        "",
        "1e-8",
        "yes",
        "null",
        "é",
        "a\nb",
        [1, 0.5, "a", None],
        {"lr": 1e-8, "betas": [0.9, 0.999], 3: True},
        [],
        {},
    ],
)
def test_show_reads_back_as_the_value(value):
    assert yaml.safe_load(show(value)) == value


def test_show_spells_as_pyyaml():
    assert [show(x) for x in (1e-8, 1e20, 100000.0, math.inf, -math.inf)] == [
        "1.0e-08",
        "1.0e+20",
        "100000.0",
        ".inf",
        "-.inf",
    ]
    assert show(math.nan) == ".nan" and math.isnan(yaml.safe_load(show(math.nan)))
    assert show("1e-8") == "'1e-8'" and show("it's") == "'it''s'"  # text stays quoted: not a number
    assert show((1, 2)) == "[1, 2]" and show({"a": [1e-5, None]}) == "{'a': [1.0e-05, null]}"
    assert show(list(range(40))).endswith("...") and len(show(list(range(40)))) == 60


def test_messages_and_hints_use_the_same_spelling():
    assert number(max=1).problem(1e20) == "must be a number <= 1, got 1.0e+20"
    assert number(above=0).problem(-1e-8) == "must be a number > 0, got -1.0e-08"
    assert yaml_number("1e-8") == show(1e-8) == "1.0e-08" and yaml_number("2.0", integer=True) == "2"
