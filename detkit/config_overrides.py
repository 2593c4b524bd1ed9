"""``--set KEY=VALUE`` overrides of a loaded config: ``apply_overrides`` parses each value as YAML and sets it with
``set_by_path``, whose errors name the nearest existing key, the new spelling of an old key, or how to address
a list; ``get_by_path`` reads a dotted key.

The names stay importable from ``detkit.config`` (which loads the files and calls ``apply_overrides``).
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable
from typing import Any

import yaml

from detkit.config import SET_ORIGIN, ConfigError, Sources, record_sources
from detkit.config_rules import RENAMED_KEYS


def _all_keys(d: dict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in d.items():
        full = f"{prefix}{k}"
        keys.append(full)
        if isinstance(v, dict):
            keys.extend(_all_keys(v, full + "."))
    return keys


def _nearest(key: str, cfg: dict) -> str:
    """' (nearest existing key: ...)': a key with the same last name at another depth (``data.train.x`` for
    ``data.train.dataset.x``) first, else the closest spelling."""
    keys = _all_keys(cfg)
    leaf = key.rsplit(".", 1)[-1]
    same_leaf = [k for k in keys if k.rsplit(".", 1)[-1] == leaf]
    close = difflib.get_close_matches(key, same_leaf or keys, n=1, cutoff=0.0)
    return f" (nearest existing key: '{close[0]}')" if close else ""


def _missing_key(key: str, cfg: dict, upto: list[str]) -> ConfigError:
    """The error for ``--set key=...`` whose ``upto`` part does not exist: the nearest key, or the new spelling."""
    new = RENAMED_KEYS.get(upto[-1])
    if new is not None:
        renamed = ".".join([*upto[:-1], new])
        return ConfigError(
            f"--set {key}: '{'.'.join(upto)}' is an old spelling; write '{renamed}' "
            "(one spelling for test settings: score_thr, nms_thr, max_per_img)"
        )
    return ConfigError(
        f"--set {key}: no key '{'.'.join(upto)}' in the config{_nearest(key, cfg)}; use '+{key}=...' to add a new key"
    )


def _not_a_mapping(key: str, upto: list[str], node: Any) -> ConfigError:
    """The error for ``--set key=...`` whose ``upto`` part is a list (an index out of range or a name) or null."""
    where = ".".join(upto)
    if isinstance(node, list):
        items = f"indices 0..{len(node) - 1}" if node else "empty"
        return ConfigError(
            f"--set {key}: '{where}' is a list of {len(node)} item(s) ({items}); address an item by its index "
            f"(e.g. {where}.0...), or give the whole list to add or remove items: --set '{where}=[...]'"
        )
    if node is None:
        return ConfigError(
            f"--set {key}: '{where}' is null in the config; give the whole section: --set '{where}={{...}}' (a "
            "mapping in YAML flow style)"
        )
    return ConfigError(f"--set {key}: '{where}' is a value ({node!r}), not a mapping: it has no keys to set")


def set_by_path(cfg: dict, key: str, value: Any, add_missing: bool = False) -> tuple:
    """Set ``cfg['a']['b']['c'] = value`` for ``key='a.b.c'``; return the key's path (``('a', 'b', 'c')``, list
    indices as ints). The key must exist and its parent must be a dict or a list.

    A new key is allowed only with the ``+`` prefix (``+a.b.c=value`` adds ``c``, and missing parents), or
    with ``add_missing`` (for a caller that checks every key afterwards, as ``load_config`` does).
    """
    allow_new = key.startswith("+") or add_missing
    key = key.lstrip("+")
    parts = key.split(".")
    node = cfg
    path: list = []
    for i, p in enumerate(parts[:-1]):
        if isinstance(node, list) and p.isdigit() and int(p) < len(node):
            node = node[int(p)]
            path.append(int(p))
            continue
        if isinstance(node, list) or node is None:
            raise _not_a_mapping(key, parts[:i], node)
        if not isinstance(node, dict) or p not in node:
            if allow_new and isinstance(node, dict):
                node[p] = {}
            else:
                raise _missing_key(key, cfg, parts[: i + 1])
        node = node[p]
        path.append(p)
    last = parts[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
        return (*path, int(last))
    if not isinstance(node, dict):
        raise _not_a_mapping(key, parts[:-1], node)
    if last not in node and not allow_new:
        raise _missing_key(key, cfg, parts)
    node[last] = value
    return (*path, last)


def get_by_path(cfg: dict, key: str, default: Any = None) -> Any:
    """Return ``cfg['a']['b']`` for ``key='a.b'``, or ``default`` when a part is missing."""
    node: Any = cfg
    for p in key.split("."):
        if isinstance(node, dict) and p in node:
            node = node[p]
        else:
            return default
    return node


def apply_overrides(
    cfg: dict, overrides: Iterable[str], sources: Sources | None = None, add_missing: bool = False
) -> dict:
    """Return a copy of ``cfg`` with ``a.b.c=value`` overrides applied (values parsed as YAML).

    Args:
        sources: when given, ``--set`` is recorded as the origin of each key set.
        add_missing: a key the config lacks is added (as with ``+key=value``) instead of refused; for a caller
            that then checks every key against what the code accepts (``load_config``).
    """
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.max_epochs=24")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item!r}: value is not valid YAML: {e}") from e
        path = set_by_path(cfg, key.strip(), value, add_missing)
        if sources is not None:
            for old in [p for p in sources if p[: len(path)] == path]:
                del sources[old]
            record_sources(sources, value, path, SET_ORIGIN)
            for i in range(1, len(path)):  # parents that '+' created
                sources.setdefault(path[:i], SET_ORIGIN)
    return cfg
