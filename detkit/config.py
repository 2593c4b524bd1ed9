"""YAML configs: ``_base_`` inheritance, ``--set key=value`` overrides, dump of the resolved config.

``load_config`` also records which file set each key (``Sources``: key path -> file, or ``--set``) and checks
the result against what the code accepts (``detkit.config_check``): an unknown key or a bad value is a
``ConfigError`` that names the key, the file and the fix.

This module reads and merges the files; the ``--set`` overrides live in ``detkit.config_overrides``, and their
names (``apply_overrides``, ``set_by_path``, ``get_by_path``) are importable from here too.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # at run time these come from detkit.config_overrides on first use: see __getattr__ below
    from detkit.config_overrides import apply_overrides as apply_overrides
    from detkit.config_overrides import get_by_path as get_by_path
    from detkit.config_overrides import set_by_path as set_by_path

# The packaged configs inherit at most two levels deep (DESIGN.md; tests/test_configs.py holds them to it); a
# user's config that names one of them as its _base_ adds levels of its own, so a chain may be this deep:
MAX_BASE_DEPTH = 4
SET_ORIGIN = "--set"  # the origin of a key given on the command line

# Where each key of a loaded config came from: key path (``('data', 'train', 'pipeline', 0, 'p')``) -> the
# file that set it last (``_base_`` files first, then the file itself), or ``--set``.
Sources = dict[tuple, str]


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the file or key and the fix."""


DELETE_KEY = "_delete_"  # in a section of a config file: replace the inherited section instead of merging into it


def _replaces(value: Any) -> bool:
    """Whether a section says ``_delete_: true`` (any other value than true / false is a ConfigError)."""
    flag = value.get(DELETE_KEY, False) if isinstance(value, dict) else False
    if not isinstance(flag, bool):
        raise ConfigError(f"{DELETE_KEY} must be true or false, got {flag!r}")
    return flag


def _without_delete(value: Any) -> Any:
    """A deep copy of ``value`` without its ``_delete_`` flags."""
    if isinstance(value, dict):
        return {k: _without_delete(v) for k, v in value.items() if k != DELETE_KEY}
    if isinstance(value, list):
        return [_without_delete(v) for v in value]
    return copy.deepcopy(value)


def merge(base: dict, override: dict) -> dict:
    """Return ``base`` updated by ``override``: dicts merge deeply, lists and scalars replace, and a dict of
    ``override`` with ``_delete_: true`` replaces ``base``'s whole section (the keys it sets, and no others)."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if k == DELETE_KEY:  # (at the top of a file it would replace every section: refused in _load)
            continue
        if isinstance(v, dict) and isinstance(out.get(k), dict) and not _replaces(v):
            out[k] = merge(out[k], v)
        else:
            _replaces(v)  # a bad flag is an error here too
            out[k] = _without_delete(v)
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<' merge keys may repeat
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} is given twice in one mapping (lines {seen[key] + 1} and "
                    f"{key_node.start_mark.line + 1}); YAML would keep the last one: keep one",
                    key_node.start_mark,
                )
            if isinstance(key, (str, int, float, bool)):
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.suffix == ".py":
        from detkit.peer_names import PYTHON_CONFIG

        raise ConfigError(f"{path} {PYTHON_CONFIG}")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_UniqueKeyLoader)  # noqa: S506  (a SafeLoader: no Python objects)
    except (UnicodeDecodeError, yaml.reader.ReaderError) as e:  # bytes no text holds (ReaderError: control chars)
        raise ConfigError(
            f"{path} is not a YAML text file (binary; a checkpoint? the order is CONFIG then CHECKPOINT)"
        ) from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping, got {type(data).__name__}")
    return data


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it (as a user would type it), else absolute."""
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def record_sources(sources: Sources, value: Any, path: tuple, origin: str) -> None:
    """Note ``origin`` as the source of ``value`` at ``path`` and of everything inside it."""
    sources[path] = origin
    if isinstance(value, dict):
        for k, v in value.items():
            record_sources(sources, v, (*path, k), origin)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            record_sources(sources, v, (*path, i), origin)


def _load(path: Path, chain: tuple[Path, ...]) -> tuple[dict, Sources]:
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path))
        raise ConfigError(f"_base_ cycle: {cycle}")
    data = _read_yaml(path)
    if DELETE_KEY in data:
        raise ConfigError(
            f"{path}: {DELETE_KEY} goes inside a section (model.neck: {{{DELETE_KEY}: true, ...}}), not at the top"
        )
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: _base_ must be a file name or a list of file names, got {bases!r}")
    if bases and len(chain) >= MAX_BASE_DEPTH:
        raise ConfigError(
            f"{path}: _base_ nests deeper than {MAX_BASE_DEPTH} levels "
            f"(chain: {' -> '.join(str(p) for p in (*chain, path))}); copy the keys of a file in the middle of the "
            "chain into the file that names it, and name that file's own _base_ instead"
        )
    merged: dict = {}
    sources: Sources = {}
    for b in bases:
        base, base_sources = _load(_base_path(path, b), (*chain, path))
        merged = merge(merged, base)
        sources.update(base_sources)  # later bases win, as in the merge
    for k, v in data.items():
        record_sources(sources, v, (k,), display_path(path))
    return merge(merged, data), sources  # merge drops _delete_ flags: a bare file has none left either


PACKAGED_DIR = Path(__file__).resolve().parent / "configs"


def _base_path(path: Path, base: str) -> Path:
    """The file a ``_base_`` entry of ``path`` names: a path (absolute, or relative to ``path``'s folder), else a
    packaged config's name (``yolo_n_shapes``, as the tools take it)."""
    bpath = Path(base) if os.path.isabs(base) else path.parent / base
    if bpath.is_file():
        return bpath
    named = packaged_configs().get(Path(base).stem) if len(Path(base).parts) == 1 else None
    if named is not None and Path(base).suffix in ("", ".yaml"):
        return named
    near = difflib.get_close_matches(Path(base).stem, list(packaged_configs()), n=1)
    hint = f"; the nearest packaged config is '{near[0]}'" if near else ""
    raise ConfigError(
        f"{path}: _base_ file not found: {base} (looked at {bpath}; nor is it a packaged config name{hint})"
    )


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


def load_config_with_sources(
    path: str | os.PathLike, overrides: Iterable[str] | None = None, check: bool = False
) -> tuple[dict, Sources]:
    """Like :func:`load_config`, also returning where each key came from (``Sources``); ``check`` runs the check
    (and lets ``--set`` add a key that the files lack: the check judges it like any other)."""
    if isinstance(overrides, (str, bytes)):
        raise TypeError(
            f"overrides must be a list of 'KEY=VALUE' strings, got one string {overrides!r}: wrap it in a list"
        )
    cfg, sources = _load(resolve_config_path(path), ())
    if overrides:
        from detkit.config_overrides import apply_overrides

        cfg = apply_overrides(cfg, overrides, sources, add_missing=check)
    sources = {p: origin for p, origin in sources.items() if _exists(cfg, p)}  # drop keys that a merge replaced
    if check:
        from detkit.config_check import check_config

        check_config(cfg, sources)
    return cfg, sources


def _exists(cfg: Any, path: tuple) -> bool:
    node = cfg
    for p in path:
        if (isinstance(node, dict) and p in node) or (isinstance(node, list) and isinstance(p, int) and p < len(node)):
            node = node[p]
        else:
            return False
    return True


def load_config(path: str | os.PathLike, overrides: Iterable[str] | None = None, check: bool = True) -> dict:
    """Load a YAML config (a path, or a packaged config's name) with its ``_base_`` files merged, then apply
    ``key=value`` overrides, then check every key and value (``detkit.config_check.check_config``).

    Args:
        overrides: ``a.b.c=value`` strings (``--set``); a key the files lack may be given (``+a.b.c=value`` says
            the same): it is checked like every other key.
        check: False loads without the check (for YAML that is not a detkit config, e.g. in tests of merging);
            an override of a key the files lack then needs the ``+`` prefix.
    Raises:
        ConfigError: a missing file, invalid YAML, a bad override, an unknown key or a bad value; the message
            names the key, the file that set it (a ``_base_`` file, the config itself or ``--set``) and the fix.
    """
    return load_config_with_sources(path, overrides, check)[0]


_OVERRIDE_NAMES = ("apply_overrides", "set_by_path", "get_by_path")


def __getattr__(name: str) -> Any:
    """The ``--set`` functions of ``detkit.config_overrides``, imported on first use: that module imports this one,
    so an import of it at the top of this file would fail whenever ``detkit.config_overrides`` is imported first."""
    if name in _OVERRIDE_NAMES:
        from detkit import config_overrides

        value = getattr(config_overrides, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
