"""The search space: a YAML file mapping config keys to distributions, checked against the config before any trial.

```yaml
optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
data.batch_size: {type: categorical, choices: [4, 8]}
train.max_epochs: {type: int, low: 10, high: 40, step: 10}
```

Each key must be a key of the resolved config (engine defaults included); every bound and choice must be a
value that a trial's config checks accept (``detkit.tune.preflight``). Any problem is a :class:`SpaceError`
naming the file and the key.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from detkit.config import ConfigError, display_path, set_by_path
from detkit.config_check import nearest

KIND_FIELDS = {
    "float": ("low", "high", "log", "step"),
    "int": ("low", "high", "log", "step"),
    "categorical": ("choices",),
}
EXAMPLE = "optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}"
SCALARS = (type(None), bool, int, float, str)  # what Optuna stores as a categorical choice


class SpaceError(ConfigError):
    """A mistake in the search-space file (or a key / value that the config does not accept)."""


@dataclass(frozen=True)
class Param:
    """One searched config key (also its Optuna parameter name) and its distribution.

    ``encoded``: categorical choices that are lists or mappings (e.g. anchor sizes) go to Optuna as JSON text.
    """

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple = ()
    encoded: bool = False

    def suggest(self, trial) -> Any:
        """Draw this parameter in an Optuna ``trial``; returns the config value."""
        if self.kind == "float":
            return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1, log=self.log)
        return self.decode(trial.suggest_categorical(self.key, self.optuna_choices()))

    def optuna_choices(self) -> list:
        return [json.dumps(c) for c in self.choices] if self.encoded else list(self.choices)

    def decode(self, stored: Any) -> Any:
        """The config value of a value Optuna stored for this parameter."""
        return json.loads(stored) if self.encoded and isinstance(stored, str) else stored

    def grid(self) -> list:
        """Every value of the parameter (for the grid sampler), as Optuna stores them."""
        if self.kind == "categorical":
            return self.optuna_choices()
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        n = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        return [round(self.low + i * self.step, 12) for i in range(n)]

    def describe(self) -> str:
        """``float in [0.0001, 0.01], log`` and the like."""
        if self.kind == "categorical":
            return "one of " + ", ".join(map(json.dumps, self.choices))
        extra = ", log" if self.log else f", step {self.step}" if self.step else ""
        return f"{self.kind} in [{self.low}, {self.high}]{extra}"


def format_value(value: Any) -> str:
    """A parameter value for a progress line or a table: floats to 4 significant digits."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if value is None or isinstance(value, (bool, list, dict)) else str(value)


def config_keys(node: Any, prefix: str = "") -> list[str]:
    """Every dotted key of a config (list items by index, as ``--set`` writes them)."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    keys = []
    for k, v in items:
        full = f"{prefix}{k}"
        keys.append(full)
        keys.extend(config_keys(v, full + "."))
    return keys


def has_key(cfg: dict, key: str) -> bool:
    """True when ``key`` (dotted; list items by index) is a key of ``cfg``."""
    node: Any = cfg
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class _Reader:
    """Checks one distribution mapping; ``fail`` raises a SpaceError naming the file and the key."""

    def __init__(self, where: str, key: str, spec: dict):
        self.where, self.key, self.spec = where, key, spec

    def fail(self, problem: str) -> SpaceError:
        return SpaceError(f"{self.where}: '{self.key}': {problem}")

    def number(self, field: str, integer: bool) -> int | float:
        if field not in self.spec:
            raise self.fail(f"'{field}' is missing (e.g. {{type: {self.spec['type']}, low: 1, high: 10}})")
        v = self.spec[field]
        if isinstance(v, str):
            raise self.fail(f"{field} must be a number, got {v!r} (a string: YAML reads 1e-4 as text, write 1.0e-4)")
        if not _is_number(v) or (integer and not isinstance(v, int)) or not math.isfinite(v):
            raise self.fail(f"{field} must be {'an integer' if integer else 'a finite number'}, got {v!r}")
        return v

    def range_param(self, kind: str) -> Param:
        integer = kind == "int"
        low, high = self.number("low", integer), self.number("high", integer)
        log, step = self.spec.get("log", False), self.spec.get("step")
        if not isinstance(log, bool):
            raise self.fail(f"log must be true or false, got {log!r}")
        if low > high:
            raise self.fail(f"low {low} is above high {high}")
        if step is not None:
            step = self.number("step", integer)
            if step <= 0:
                raise self.fail(f"step must be > 0, got {step}")
            if log and (not integer or step != 1):
                raise self.fail("log and step cannot be combined (Optuna samples a log range without steps)")
        if log and low <= 0:
            raise self.fail(f"a log range needs low > 0, got {low}")
        return Param(self.key, kind, low=low, high=high, step=step, log=log)

    def categorical(self) -> Param:
        choices = self.spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise self.fail(
                f"choices must be a non-empty list, got {choices!r} (e.g. {{type: categorical, choices: [4, 8]}})"
            )
        encoded = not all(isinstance(c, SCALARS) for c in choices)
        keys = [json.dumps(c, sort_keys=True) for c in choices]
        if len(set(keys)) != len(keys):
            raise self.fail(f"choices repeat a value: {choices!r}")
        return Param(self.key, "categorical", choices=tuple(choices), encoded=encoded)

    def read(self) -> Param:
        kind = self.spec.get("type")
        if kind not in KIND_FIELDS:
            near = nearest(str(kind), KIND_FIELDS)
            hint = f" (nearest: '{near}')" if near and kind is not None else ""
            raise self.fail(f"type must be one of {', '.join(KIND_FIELDS)}, got {kind!r}{hint}")
        valid = KIND_FIELDS[kind]
        for field in self.spec:
            if field != "type" and field not in valid:
                near = nearest(str(field), valid)
                raise self.fail(
                    f"unknown field '{field}' for type {kind}"
                    + (f" (nearest valid: '{near}')" if near else "")
                    + f"; valid: {', '.join(valid)}"
                )
        return self.categorical() if kind == "categorical" else self.range_param(kind)


def _nested_distribution(key: str, spec: dict) -> tuple[str, str] | None:
    """``('optimizer.lr', 'float')`` for ``optimizer: {lr: {type: float, ...}}``: the first nested distribution."""
    for sub, value in spec.items():
        if isinstance(value, dict):
            if value.get("type") in KIND_FIELDS:
                return f"{key}.{sub}", value["type"]
            deeper = _nested_distribution(f"{key}.{sub}", value)
            if deeper:
                return deeper
    return None


def _config_section(key: Any, spec: Any) -> bool:
    """True for an entry of a config file (``model: {type: FasterRCNN, depth: 50}``), not a distribution."""
    if not isinstance(key, str) or "." in key or not isinstance(spec, dict) or spec.get("type") in KIND_FIELDS:
        return False
    fields = set().union(*KIND_FIELDS.values(), {"type"})
    return _nested_distribution(key, spec) is None and any(f not in fields for f in spec)


def layout_hint(where: str, data: dict) -> SpaceError | None:
    """A SpaceError for a file laid out as a config rather than a space: a config file given as --space
    (``_base_``, or a section such as ``model: {type: FasterRCNN, ...}``), or nested keys where a space writes
    them dotted (``optimizer: {lr: {type: float, ...}}``); None when neither."""
    if "_base_" in data or any(_config_section(k, v) for k, v in data.items()):
        return SpaceError(
            f"{where}: this looks like a config file, not a search space: give the config as CONFIG and, as "
            f"--space, a file of dotted config keys mapped to distributions, e.g. '{EXAMPLE}'"
        )
    for key, spec in data.items():
        if isinstance(spec, dict) and spec.get("type") not in KIND_FIELDS:
            nested = _nested_distribution(str(key), spec)
            if nested:
                fields = "choices: [...]" if nested[1] == "categorical" else "low: ..., high: ..."
                return SpaceError(
                    f"{where}: '{key}' nests its keys; a space writes each searched key dotted, as --set does: "
                    f"'{nested[0]}: {{type: {nested[1]}, {fields}}}'"
                )
    return None


def read_space(path: str | Path) -> list[Param]:
    """Parse the space file into parameters (the distributions alone; :func:`load_space` checks the keys)."""
    path = Path(path)
    where = display_path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise SpaceError(f"{where}: not valid YAML ({' '.join(str(e).split())})") from None
    except UnicodeDecodeError:
        raise SpaceError(f"{where}: a binary file, not a YAML search space (e.g. {EXAMPLE})") from None
    if not isinstance(data, dict) or not data:
        got = "nothing" if not data else f"a {type(data).__name__}"
        raise SpaceError(
            f"{where}: a search space is a mapping of config keys to distributions, e.g. '{EXAMPLE}'; got {got}"
        )
    hint = layout_hint(where, data)
    if hint is not None:
        raise hint
    params = []
    for key, spec in data.items():
        if not isinstance(key, str):
            raise SpaceError(f"{where}: the key {key!r} is not a dotted config key such as 'optimizer.lr'")
        if not isinstance(spec, dict):
            raise SpaceError(
                f"{where}: '{key}': expected a distribution such as {{type: float, low: 1.0e-4, high: 1.0e-2}}, "
                f"got {spec!r}"
            )
        params.append(_Reader(where, key, spec).read())
    return params


def _bounds(param: Param) -> list[tuple[str, Any]]:
    if param.kind == "categorical":
        return [(f"choice {json.dumps(c)}", c) for c in param.choices]
    return [(f"low {param.low}", param.low), (f"high {param.high}", param.high)]


def check_space(params: list[Param], cfg: dict, where: str) -> None:
    """Every key is a key of ``cfg`` (a resolved config), and every bound and categorical choice passes the checks
    of a trial's config with the other searched keys drawn (``detkit.tune.preflight.draw_problem``: the config
    check and the Trainer's own; no data or model is built)."""
    from detkit.tune.preflight import config_problem, draw_problem

    keys = None
    for param in params:
        if not has_key(cfg, param.key):
            keys = keys if keys is not None else config_keys(cfg)
            near = nearest(param.key, keys)
            raise SpaceError(
                f"{where}: '{param.key}' is not a key of the config"
                + (f" (nearest: '{near}')" if near else "")
                + "; a key the config lacks but the code accepts can be added for every trial with --set KEY=VALUE"
            )
    base = config_problem(cfg)  # a problem of the config itself is no value's fault
    for param in params:
        for what, value in _bounds(param):
            problem = draw_problem(cfg, params, {param.key: value})
            if problem is not None and problem != base:
                raise SpaceError(f"{where}: '{param.key}': its {what} is not a valid value: {problem}")
    problem = draw_problem(cfg, params, {})
    if problem is not None:
        raise SpaceError(f"{where}: every trial's config would fail its checks, whatever the space draws: {problem}")


def load_space(path: str | Path, cfg: dict) -> list[Param]:
    """Read the space file and check it against ``cfg`` (a resolved config); raises :class:`SpaceError`."""
    params = read_space(path)
    check_space(params, cfg, display_path(Path(path)))
    return params


def apply_params(cfg: dict, values: dict[str, Any]) -> dict:
    """A copy of ``cfg`` with each ``key: value`` set (config values, decoded)."""
    out = copy.deepcopy(cfg)
    for key, value in values.items():
        set_by_path(out, key, copy.deepcopy(value))
    return out


def decode_params(params: list[Param], stored: dict[str, Any]) -> dict[str, Any]:
    """Config values of the parameters Optuna stored for a trial (``FrozenTrial.params``)."""
    by_key = {p.key: p for p in params}
    return {k: by_key[k].decode(v) if k in by_key else v for k, v in stored.items()}


def grid_space(params: list[Param], where: str) -> dict[str, list]:
    """The grid sampler's search space; a float range without a step is a SpaceError (no finite grid)."""
    for p in params:
        if p.kind == "float" and not p.step:
            raise SpaceError(
                f"{where}: '{p.key}': --sampler grid needs a finite set of values: give the float range a step, "
                "or make it type: categorical"
            )
    return {p.key: p.grid() for p in params}
