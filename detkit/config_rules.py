"""Rules for config values: a small declarative vocabulary (``integer(min=1)``, ``number(0, 1)``, ...).

Tables of ``key -> Rule`` sit next to the defaults they check (``detkit.engine.defaults.TRAIN_RULES``,
``detkit.engine.optim.OPTIMIZER_RULES`` / ``SCHEDULER_RULES``, ``detkit.config_check``); ``Rule.problem``
says what is wrong with a value, in words a user can act on. ``RENAMED_KEYS`` lists old spellings of the
test settings (one spelling everywhere: ``score_thr``, ``nms_thr``, ``max_per_img``).
"""

from __future__ import annotations

import math
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

# Old spellings (torchvision, MMDetection, Ultralytics, earlier detkit) -> the one detkit key.
RENAMED_KEYS: dict[str, str] = {
    "score_thresh": "score_thr",
    "score_threshold": "score_thr",
    "box_score_thresh": "score_thr",
    "conf_thres": "score_thr",
    "nms_thresh": "nms_thr",
    "nms_threshold": "nms_thr",
    "box_nms_thresh": "nms_thr",
    "iou_thres": "nms_thr",
    "detections_per_img": "max_per_img",
    "box_detections_per_img": "max_per_img",
    "max_det": "max_per_img",
    "max_dets": "max_per_img",
    "max_detections": "max_per_img",
    "max_per_image": "max_per_img",
}


def show(value: Any) -> str:
    """A value as the user wrote it in YAML, for messages: ``true``, ``null``, ``1.5``, ``1.0e-08``, ``.inf``,
    ``'text'`` (strings always quoted), ``[1, 'a']``, ``{'k': 0.5}``; ``yaml.safe_load`` reads it back (a text
    longer than 60 characters is cut, ``...`` at the end). A value that YAML cannot hold is shown as ``repr``."""
    text = _yaml_text(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _yaml_text(value: Any) -> str:
    """``value`` in YAML flow style, on one line (see :func:`show`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if value.isprintable():
            return "'" + value.replace("'", "''") + "'"
        return yaml.safe_dump(value, default_style='"', width=math.inf).strip()  # "a\nb": escapes on one line
    if isinstance(value, (int, float)):  # (float() / int(): PyYAML represents no subclass, e.g. numpy.float64)
        # PyYAML's own spelling: 1e-08 would be text to PyYAML, 1.0e-08 is a float (and inf is .inf)
        number = float(value) if isinstance(value, float) else int(value)
        return yaml.safe_dump(number).removesuffix("\n").removesuffix("...").strip()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_yaml_text(k)}: {_yaml_text(v)}" for k, v in value.items()) + "}"
    return repr(value)


_PLURAL = {"int": "integers", "number": "numbers", "bool": "booleans", "str": "strings", "list": "lists"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Rule:
    """What one config value may be.

    kind: ``int``, ``number``, ``bool``, ``str``, ``choice`` (one of ``choices``), ``list`` (of ``item``,
    ``length`` long when fixed), ``dict`` (free keys, values obeying ``item``), ``section`` (the keys of
    ``fields`` only, each with its rule), ``either`` (any of ``options``). ``min``/``max`` bound numbers
    (inclusive), ``above`` is an exclusive lower bound; ``none`` allows null.
    """

    kind: str
    min: float | None = None
    max: float | None = None
    above: float | None = None
    none: bool = False
    choices: tuple = ()
    length: int | None = None
    item: Rule | None = None
    fields: Mapping[str, Rule] | None = None
    options: tuple[Rule, ...] = field(default=())

    def describe(self) -> str:
        """The rule in words: 'an integer >= 1', 'a list of 2 numbers', 'one of: SGD, AdamW'."""
        text = self._describe_kind() + self._describe_range()
        return text + (" or null" if self.none else "")

    def _describe_kind(self) -> str:
        if self.kind == "int":
            return "an integer"
        if self.kind == "number":
            return "a number"
        if self.kind == "bool":
            return "true or false"
        if self.kind == "str":
            return "a string"
        if self.kind == "choice":
            return "one of: " + ", ".join(show(c) for c in self.choices)
        if self.kind == "list":
            n = f"{self.length} " if self.length is not None else ""
            what = _PLURAL.get(self.item.kind, "values") if self.item else "values"
            rng = self.item._describe_range() if self.item else ""
            return f"a list of {n}{what}{rng}"
        if self.kind in ("dict", "section"):
            return "a mapping"
        return " or ".join(o.describe() for o in self.options)

    def _describe_range(self) -> str:
        lo = f"> {self.above:g}" if self.above is not None else (f">= {self.min:g}" if self.min is not None else "")
        if self.max is not None and lo:
            left = "(" if self.above is not None else "["
            low = self.above if self.above is not None else self.min
            return f" in {left}{low:g}, {self.max:g}]"
        if self.max is not None:
            return f" <= {self.max:g}"
        return f" {lo}" if lo else ""

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` obeys the rule (the keys of a ``section`` are checked by the caller)."""
        if value is None:
            return self.none
        if self.kind == "either":
            return any(o.accepts(value) for o in self.options)
        if not self._kind_ok(value):
            return False
        if self.kind in ("int", "number"):
            return self._in_range(value)
        if self.kind == "list":
            return (self.length is None or len(value) == self.length) and all(
                self.item is None or self.item.accepts(v) for v in value
            )
        if self.kind == "dict" and self.item is not None:
            return all(self.item.accepts(v) for v in value.values())
        return True

    def _kind_ok(self, value: Any) -> bool:
        checks = {
            "int": _is_int,
            "number": _is_number,
            "bool": lambda v: isinstance(v, bool),
            "str": lambda v: isinstance(v, str),
            "choice": lambda v: any(v == c and type(v) is type(c) for c in self.choices),
            "list": lambda v: isinstance(v, (list, tuple)),
            "dict": lambda v: isinstance(v, dict),
            "section": lambda v: isinstance(v, dict),
        }
        return checks[self.kind](value)

    def _in_range(self, value: float) -> bool:
        if self.min is not None and value < self.min:
            return False
        if self.above is not None and value <= self.above:
            return False
        return self.max is None or value <= self.max

    def problem(self, value: Any) -> str | None:
        """None when ``value`` obeys the rule, else 'must be an integer >= 1, got 1.5'."""
        if self.accepts(value):
            return None
        text = f"must be {self.describe()}, got {show(value)}"
        if self.kind in ("number", "int") and isinstance(value, str) and _parses_as_number(value):
            number = yaml_number(value, self.kind == "int")
            if number == value.strip():  # quoted in the file
                text += f" (read as text: write {number} without quotes)"
            else:  # YAML 1.1 takes 1e30 (no point, no sign) for text
                text += f" (YAML reads {value.strip()} as text: write {number})"
        return text


def yaml_number(text: str, integer: bool = False) -> str:
    """How to write the number ``text`` (which Python parses) so that YAML 1.1 reads a number: an integer for an
    integer rule, ``.inf`` / ``.nan``, and exponents with a point and a sign (``1e-8`` and ``1.0e5`` are text
    to PyYAML, ``1.0e-08`` and ``1.0e+05`` numbers)."""
    if text.strip().lstrip("+-").isdigit():
        return str(int(text))
    x = float(text)
    return str(int(x)) if integer and x.is_integer() else show(x)


def _parses_as_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def integer(min: int | None = None, max: int | None = None, none: bool = False) -> Rule:
    """An int (not a float such as 1.5 or 2.0, not a boolean), within ``[min, max]``."""
    return Rule("int", min=min, max=max, none=none)


def number(min: float | None = None, max: float | None = None, above: float | None = None, none: bool = False) -> Rule:
    """An int or a float (not a boolean, not a string), within ``[min, max]`` (``above``: exclusive)."""
    return Rule("number", min=min, max=max, above=above, none=none)


def boolean(none: bool = False) -> Rule:
    """true or false (not 0 / 1, not 'yes' as a string)."""
    return Rule("bool", none=none)


def text(none: bool = False) -> Rule:
    """A string."""
    return Rule("str", none=none)


def choice(*choices: Any, none: bool = False) -> Rule:
    """One of ``choices`` (compared with their types: ``true`` is not ``1``)."""
    return Rule("choice", choices=tuple(choices), none=none)


def list_of(item: Rule | None = None, length: int | None = None, none: bool = False) -> Rule:
    """A list whose items obey ``item`` (any when None), exactly ``length`` long when given."""
    return Rule("list", item=item, length=length, none=none)


def mapping(values: Rule | None = None, none: bool = False) -> Rule:
    """A mapping with free keys whose values obey ``values`` (e.g. ``optimizer.lr_mult``)."""
    return Rule("dict", item=values, none=none)


def section(fields: Mapping[str, Rule], none: bool = False) -> Rule:
    """A mapping that may hold only the keys of ``fields`` (e.g. ``train.ema: {decay, tau}``)."""
    return Rule("section", fields=dict(fields), none=none)


def either(*options: Rule, none: bool = False) -> Rule:
    """Any of ``options`` (e.g. an int or a list of 2 ints)."""
    return Rule("either", options=tuple(options), none=none)


PROBABILITY = number(0, 1)

# ``class_weight: balanced | sqrt``: per-class weights computed from the training set's class counts when
# training starts (detkit.data.class_freq), instead of a list.
CLASS_WEIGHT_MODES = ("balanced", "sqrt")

# Keyword arguments with one meaning in every constructor that takes them: their range is checked wherever
# they appear (a model part, a dataset, a detkit transform), instead of the plain type hint.
PARAM_RULES: dict[str, Rule] = {
    "num_classes": integer(min=1, none=True),
    "score_thr": PROBABILITY,
    "nms_thr": PROBABILITY,
    "max_per_img": integer(min=1),
    "nms_pre": integer(min=1),
    "mask_thresh": PROBABILITY,
    "fg_iou_thresh": PROBABILITY,
    "bg_iou_thresh": PROBABILITY,
    "positive_fraction": PROBABILITY,
    "batch_size_per_image": integer(min=1),
    "pre_nms_top_n_train": integer(min=1),
    "post_nms_top_n_train": integer(min=1),
    "pre_nms_top_n_test": integer(min=1),
    "post_nms_top_n_test": integer(min=1),
    "p": PROBABILITY,
    "dropout": number(0, 1, none=True),
    "reg_max": integer(min=1),
    "topk": integer(min=1),
    "max_outside": number(min=0),
    "class_weight": either(list_of(number(min=0)), choice(*CLASS_WEIGHT_MODES), none=True),
}


def rule_from_hint(hint: Any) -> Rule | None:
    """The rule a precise type hint states (``int``, ``float | None``, ``Sequence[int]``, ``tuple[int, int]``,
    ``Literal['a', 'b']``), or None when the hint does not say what a YAML value must be (``Any``, a module,
    a callable): such a value is not checked."""
    if isinstance(hint, type) and hint in _SIMPLE_HINTS:
        return _SIMPLE_HINTS[hint]
    if hint in (list, tuple, Sequence):
        return list_of()
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in (dict, Mapping) or origin in (dict, Mapping):
        return mapping()
    if origin is typing.Literal:
        return choice(*args)
    if origin in (typing.Union, types.UnionType):
        rules = [rule_from_hint(a) for a in args if a is not type(None)]
        if any(r is None for r in rules):
            return None
        allow_none = type(None) in args
        return replace(rules[0], none=allow_none) if len(rules) == 1 else either(*rules, none=allow_none)
    if origin in (list, Sequence) or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
        return list_of(rule_from_hint(args[0]) if args else None)
    if origin is tuple:
        items = [rule_from_hint(a) for a in args]
        same = all(r == items[0] for r in items)
        return list_of(items[0] if same else None, length=len(args))
    return None


_SIMPLE_HINTS = {int: integer(), float: number(), bool: boolean(), str: text(), os.PathLike: text(), Path: text()}
