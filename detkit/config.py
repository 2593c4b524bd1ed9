"""YAML configs: ``_base_`` inheritance, ``--set key=value`` overrides, dump of the resolved config."""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

MAX_BASE_DEPTH = 2  # a config inherits at most two levels deep (DESIGN.md)


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the file or key and the fix."""


def merge(base: dict, override: dict) -> dict:
    """Return ``base`` updated by ``override``: dicts merge deeply, lists and scalars replace."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping, got {type(data).__name__}")
    return data


def _load(path: Path, chain: tuple[Path, ...]) -> dict:
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path))
        raise ConfigError(f"_base_ cycle: {cycle}")
    data = _read_yaml(path)
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    if bases and len(chain) >= MAX_BASE_DEPTH:
        raise ConfigError(
            f"{path}: _base_ nests deeper than {MAX_BASE_DEPTH} levels "
            f"(chain: {' -> '.join(str(p) for p in (*chain, path))})"
        )
    merged: dict = {}
    for b in bases:
        bpath = Path(b) if os.path.isabs(b) else path.parent / b
        if not bpath.is_file():
            raise ConfigError(f"{path}: _base_ file not found: {b} (looked at {bpath})")
        merged = merge(merged, _load(bpath, (*chain, path)))
    return merge(merged, data)


PACKAGED_DIR = Path(__file__).resolve().parent / "configs"


def packaged_configs() -> dict[str, Path]:
    """The configs shipped inside the package: ``{name: path}`` (name = file stem; ``_base_`` files excluded)."""
    found = {}
    for p in sorted(PACKAGED_DIR.rglob("*.yaml")):
        if "_base_" not in p.relative_to(PACKAGED_DIR).parts:
            found.setdefault(p.stem, p)
    return found


def resolve_config_path(path: str | os.PathLike) -> Path:
    """A config path as given when it exists; else a packaged config by name (``yolo_n_shapes``) or by its path
    inside the package (``configs/yolo/yolo_n_shapes.yaml``, ``yolo/yolo_n_shapes.yaml``)."""
    given = Path(path)
    if given.is_file():
        return given
    rel = Path(*given.parts[1:]) if given.parts[:1] == ("configs",) else given
    for cand in (PACKAGED_DIR / rel, PACKAGED_DIR / rel.with_suffix(".yaml")):
        if cand.is_file() and not given.is_absolute():
            return cand
    named = packaged_configs().get(given.stem if given.suffix == ".yaml" else str(given))
    if named is not None and len(given.parts) == 1:
        return named
    near = difflib.get_close_matches(given.stem, list(packaged_configs()), n=1)
    hint = f"; the nearest packaged config is '{near[0]}'" if near else ""
    raise ConfigError(
        f"config file not found: {path} (neither a file nor a packaged config name{hint}; `detkit configs` lists them)"
    )


def load_config(path: str | os.PathLike, overrides: Iterable[str] | None = None) -> dict:
    """Load a YAML config (a path, or a packaged config's name) with its ``_base_`` files merged, then apply
    ``key=value`` overrides."""
    cfg = _load(resolve_config_path(path), ())
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    return cfg


def _all_keys(d: dict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in d.items():
        full = f"{prefix}{k}"
        keys.append(full)
        if isinstance(v, dict):
            keys.extend(_all_keys(v, full + "."))
    return keys


def _nearest(key: str, cfg: dict) -> str:
    close = difflib.get_close_matches(key, _all_keys(cfg), n=1, cutoff=0.0)
    return f" (nearest existing key: '{close[0]}')" if close else ""


def set_by_path(cfg: dict, key: str, value: Any) -> None:
    """Set ``cfg['a']['b']['c'] = value`` for ``key='a.b.c'``; the key must exist, the parent must be a dict.

    A new key is allowed only under a dict whose existing entries show it is free-form (empty dict), or
    for the last component of a key whose parent exists and is a dict marked by the ``+`` prefix
    (``+a.b.c=value`` adds a key).
    """
    allow_new = key.startswith("+")
    key = key.lstrip("+")
    parts = key.split(".")
    node = cfg
    for i, p in enumerate(parts[:-1]):
        if isinstance(node, list) and p.isdigit() and int(p) < len(node):
            node = node[int(p)]
            continue
        if not isinstance(node, dict) or p not in node:
            if allow_new and isinstance(node, dict):
                node[p] = {}
            else:
                raise ConfigError(
                    f"--set {key}: no key '{'.'.join(parts[: i + 1])}' in the config"
                    f"{_nearest(key, cfg)}; use '+{key}=...' to add a new key"
                )
        node = node[p]
    last = parts[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
        return
    if not isinstance(node, dict):
        raise ConfigError(f"--set {key}: '{'.'.join(parts[:-1])}' is not a mapping")
    if last not in node and not allow_new:
        raise ConfigError(
            f"--set {key}: no key '{key}' in the config{_nearest(key, cfg)}; use '+{key}=...' to add a new key"
        )
    node[last] = value


def get_by_path(cfg: dict, key: str, default: Any = None) -> Any:
    """Return ``cfg['a']['b']`` for ``key='a.b'``, or ``default`` when a part is missing."""
    node: Any = cfg
    for p in key.split("."):
        if isinstance(node, dict) and p in node:
            node = node[p]
        else:
            return default
    return node


def apply_overrides(cfg: dict, overrides: Iterable[str]) -> dict:
    """Return a copy of ``cfg`` with ``a.b.c=value`` overrides applied (values parsed as YAML)."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.max_epochs=24")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item!r}: value is not valid YAML: {e}") from e
        set_by_path(cfg, key.strip(), value)
    return cfg


def dump_config(cfg: dict, path: str | os.PathLike | None = None) -> str:
    """Return the config as YAML text, and write it to ``path`` (atomically) when given."""
    text = yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return text
