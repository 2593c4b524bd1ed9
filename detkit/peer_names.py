"""MMDetection's and Detectron2's names of config keys, flags and commands, and detkit's for them.

``python tools/train.py cfg.py --cfg-options train_cfg.max_epochs=12 --auto-resume`` (MMDetection) and
``train_net.py --config-file x.yaml SOLVER.MAX_ITER 10 MODEL.WEIGHTS w.pth`` (Detectron2) are, in detkit,
``detkit train CONFIG --set train.max_epochs=12 --resume`` and ``detkit train CONFIG --set train.max_iters=10
--load-from w.pth``. :func:`config_key` gives detkit's form of one config key (a dotted path and its value),
:func:`section_keys` of every key below an unknown top-level section (``SOLVER: {MAX_ITER: 10}``),
:func:`flag` of one command-line flag, :func:`command` of a command word (``test``). Like
``detkit.ultralytics_names`` for Ultralytics, whose :class:`Translation` they return; the tools use them in their
messages (docs/training.md, "Coming from MMDetection / Detectron2"). The tables they read (``KEYS``,
``DATASET_KEYS``, ``ROOTS``, ``FLAGS``, ``COMMANDS``) are :mod:`detkit.peer_tables`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from detkit.peer_tables import (  # noqa: F401  (D2, FLAGS, KEYS, ROOTS: read from here by the tools)
    COMMANDS,
    D2,
    D2_CONFIG,
    DATASET_KEYS,
    FLAGS,
    KEYS,
    NO_KEY,
    OWN_KEY_NOTES,
    PYTHON_CONFIG,
    ROOTS,
)
from detkit.ultralytics_names import Translation, _flag, _show

__all__ = [
    "D2_CONFIG",
    "PYTHON_CONFIG",
    "PeerName",
    "command",
    "config_key",
    "detectron2_sections",
    "flag",
    "is_detkit_key",
    "section_keys",
    "words_to_set",
]


def detectron2_sections(keys: Sequence[Any]) -> list[str]:
    """The keys of ``keys`` that are top-level sections of a Detectron2 (yacs) config (``MODEL``, ``SOLVER``, ...)
    when there are two or more of them (a Detectron2 config, not one stray key); else []."""
    names = {*ROOTS[D2], *(k.split(".")[0] for k, (whose, _, _) in KEYS.items() if whose == D2)}
    found = [k for k in keys if isinstance(k, str) and k.isupper() and k in names]
    return found if len(found) > 1 else []


@dataclass
class PeerName:
    """A peer's key or flag as given (``SOLVER.MAX_ITER``, ``--eval-only``), whose it is, and detkit's form."""

    given: str
    whose: str
    fix: Translation

    def line(self, kind: str = "key") -> str:
        """``SOLVER.MAX_ITER is Detectron2's key; detkit's: --set train.max_iters=10`` (or the note alone)."""
        joint = "; detkit's: " if self.fix.sets or self.fix.flags or self.fix.config else "; "
        return f"{self.given} is {self.whose} {kind}{joint}{self.fix.text()}"


def _plain(path: Sequence[Any]) -> str:
    return ".".join(str(p) for p in path if not isinstance(p, int))


def _to(target: str, value: Any, note: str, name: str) -> Translation:
    """detkit's form of ``value`` for ``target``: a config key, a flag (``--amp`` and ``--resume`` on or off as
    Ultralytics' are, a path for ``--resume``) or a note."""
    if target in ("--amp", "--resume"):
        value = True if isinstance(value, dict) else value  # (MMDetection 2: fp16 = dict(loss_scale=512.))
        found = _flag(target[2:], "false" if value is None else value)
        return Translation(name, flags=found.flags, note=found.note or note)
    if target.startswith("--"):
        if value is None:
            return Translation(name, note=f"{target} is off unless given: leave it out")
        return Translation(name, flags=[target, str(value)], note=note)
    if target:
        return Translation(name, sets=[f"{target}={_show(value)}"], note=note)
    return Translation(name, note=note)


def _dataset_key(path: Sequence[Any]) -> int | None:
    """The index in ``path`` of a peer's dataset key (``data.train.metainfo``, ``data.val.dataset.img_prefix``)."""
    if not path or path[0] != "data":
        return None
    return next((i for i in range(2, len(path)) if path[i] in DATASET_KEYS), None)


def _dataset_path(path: Sequence[Any], target: str, cfg: dict | None) -> list[Any]:
    """Where ``target`` (detkit's key for a peer's dataset key) goes in the dataset spec at ``path`` of ``cfg``: below
    the wrappers that do not take it (a MixDataset's ``dataset``: ``data.train.dataset.classes``); ``path`` itself
    without ``cfg`` or where the spec takes it."""
    import detkit.data.datasets  # noqa: F401  (registers every dataset)
    from detkit.config_check import accepted
    from detkit.registry import DATASETS

    out, spec = list(path), cfg
    for key in path:
        spec = spec.get(key) if isinstance(spec, dict) else None
    while isinstance(spec, dict) and isinstance(spec.get("dataset"), dict):
        kind = spec.get("type")
        if isinstance(kind, str) and kind in DATASETS and target in accepted(DATASETS.get(kind))[0]:
            break  # the wrapper takes the key itself (a MixDataset's img_dir, passed on)
        out, spec = [*out, "dataset"], spec["dataset"]
    return out


def config_key(path: Sequence[Any], value: Any = None, cfg: dict | None = None) -> PeerName | None:
    """detkit's form of the peer's config key at ``path`` (``('data', 'samples_per_gpu')``, ``('SOLVER',
    'MAX_ITER')``, ``('data', 'train', 'metainfo')``) set to ``value``; None when it is no peer's name. A key
    below one that only has a note (``INPUT.MIN_SIZE_TRAIN``) takes that note. ``cfg``, the config at hand, places
    a dataset key where its dataset takes it: ``data.train.dataset.classes`` below a MixDataset (every YOLO
    config), ``data.train.classes`` on a CocoDataset."""
    dotted = _plain(path)
    if dotted in KEYS:
        whose, target, note = KEYS[dotted]
        return PeerName(dotted, whose, _to(target, value, note, dotted))
    parts = dotted.split(".")
    for n in range(len(parts) - 1, 0, -1):
        whose, target, note = KEYS.get(".".join(parts[:n]), ("", "x", ""))
        if not target:
            return PeerName(dotted, whose, Translation(dotted, note=note))
    i = _dataset_key(path)
    if i is None:
        return None
    whose, target, note = DATASET_KEYS[path[i]]
    if path[i] == "data_prefix" and isinstance(value, dict):
        value = value.get("img", next(iter(value.values()), ""))
    if path[i] == "metainfo" and isinstance(value, dict) and value.get("classes"):
        target, value = "classes", list(value["classes"])  # metainfo.classes: the subset to keep
    given = _plain(path[: i + 1])
    where = _dataset_path(path[:i], target, cfg) if target and cfg is not None else path[:i]
    return PeerName(given, whose, _to(_plain([*where, target]) if target else "", value, note, given))


def _whose_root(root: str) -> str | None:
    return next((whose for whose, roots in ROOTS.items() if root in roots), None)


def section_keys(key: str, value: Any) -> list[PeerName]:
    """detkit's form of each key below the unknown top-level section ``key`` of a peer (``SOLVER: {MAX_ITER: 10,
    BASE_LR: 0.02}``: two answers); [] when ``key`` is no peer's section."""
    whose = _whose_root(str(key))
    out: list[PeerName] = []

    def walk(path: tuple, v: Any) -> None:
        found = config_key(path, v)
        if found is not None:
            out.append(found)
        elif isinstance(v, dict) and v:
            for k, sub in v.items():
                walk((*path, k), sub)
        elif whose is not None:
            out.append(PeerName(_plain(path), whose, Translation(_plain(path), note=NO_KEY)))

    walk((key,), value)
    return out


def _skeletons(parts: list[str]) -> list[dict]:
    """Configs to try a key in without a config at hand: one per dataset type below ``data.<split>``, else {}."""
    if len(parts) > 2 and parts[0] == "data" and parts[1] in ("train", "val", "test"):
        import detkit.data.datasets  # noqa: F401  (registers every dataset)
        from detkit.registry import DATASETS

        return [{"data": {parts[1]: {"type": name}}} for name in DATASETS]
    return [{}]


def is_detkit_key(key: str, value: str, cfg: dict | None = None) -> bool:
    """Whether ``key`` is detkit's (``data.num_workers``, ``data.train.ann_file``): the check of ``cfg`` (else of
    :func:`_skeletons`) with it set to ``value`` calls neither it nor a parent unknown (a bad value still counts)."""
    from detkit.config_check import DATA_RULES, DATA_SPLITS, check_config
    from detkit.config_overrides import apply_overrides

    parts = key.split(".")
    if len(parts) == 2 and parts[0] == "data":  # the data section's own keys: known without a model (no torch)
        return parts[1] in DATA_RULES or parts[1] in DATA_SPLITS
    for base in [cfg] if isinstance(cfg, dict) else _skeletons(parts):
        try:
            check_config(apply_overrides(base, [f"{key}={value}"], add_missing=True))
        except ValueError as e:  # a ConfigError: a key unknown, a value bad, a type missing (a skeleton's)
            unknown = re.findall(r"unknown (?:key|top-level section) '([^']+)'", str(e))
            if any(key == k or key.startswith(k + ".") for k in unknown):
                continue
        return True
    return False


def words_to_set(pairs: Sequence[tuple[str, str]], cfg: dict | None = None) -> Translation:
    """detkit's form of the overrides ``pairs`` (``('SOLVER.MAX_ITER', '10')``, ``('train_cfg.max_epochs',
    '12')``): one ``--set`` of detkit's keys, the flags, and the notes of keys without one (``cfg``: the config at
    hand, as :func:`config_key`). A key under a peer's section name that detkit shares (``data.num_workers``) is
    detkit's when :func:`is_detkit_key`."""
    out = Translation("--set")
    for key, value in pairs:
        found = config_key(key.split("."), value, cfg)
        if found is None and _whose_root(key.split(".")[0]) and not is_detkit_key(key, value, cfg):
            found = PeerName(key, "", Translation(key, note=NO_KEY))
        fix = (
            found.fix
            if found is not None
            else Translation(key, sets=[f"{key}={value}"], note=OWN_KEY_NOTES.get(key, ""))
        )
        out.sets += fix.sets
        out.flags += fix.flags
        if fix.note:
            out.note = "; ".join(filter(None, [out.note, f"{key}: {fix.note}" if len(pairs) > 1 else fix.note]))
    return out


def flag(name: str, values: Sequence[str], tool_command: str = "python tools/train.py") -> PeerName | None:
    """detkit's form of the peer's flag ``name`` given with ``values`` to ``tool_command`` (None: no peer's
    flag)."""
    if name not in FLAGS:
        return None
    whose, _, target = FLAGS[name]
    if target == "--set":
        if name == "--opts":
            pairs = list(zip(values[::2], values[1::2]))
        else:
            pairs = [(k, v) for k, _, v in (w.partition("=") for w in values)]
        return PeerName(name, whose, words_to_set(pairs) if pairs else Translation(name, flags=["--set KEY=VALUE"]))
    if target == "CONFIG":
        given = values[0] if values else "FILE"
        note = f"detkit's CONFIG is the first argument: `{tool_command} {given} ...`"
        return PeerName(name, whose, Translation(name, note=note))
    if target.startswith("--"):
        flags = [target] if " " in target else [target, *values[:1]]
        return PeerName(name, whose, Translation(name, flags=flags))
    if "--out-dir DIR" in target and values:
        target = target.replace("--out-dir DIR", f"--out-dir {values[0]}")
    return PeerName(name, whose, Translation(name, note=target))


def command(name: str) -> str | None:
    """The answer to the peer's command word ``name`` given to ``detkit`` (``detkit test``); None: none of them."""
    if name not in COMMANDS:
        return None
    script, ours = COMMANDS[name]
    return f"unknown command '{name}' ({script}); detkit's is `detkit {ours}` (see `detkit --help`)"
