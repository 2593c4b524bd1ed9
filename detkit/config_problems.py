"""The problems found in a config and their messages: each names the key (``--set`` spelling), the file that set
it, and the fix (an old spelling's new key, a peer toolkit's key in detkit's form, or the nearest valid key)."""

from __future__ import annotations

import difflib
import typing
from typing import Any

from detkit.config import ConfigError, Sources
from detkit.config_rules import RENAMED_KEYS
from detkit.peer_names import config_key as peer_key

RENAME_NOTE = "one spelling for test settings: score_thr, nms_thr, max_per_img"


def dotted(path: tuple) -> str:
    """``('data', 'train', 'pipeline', 0, 'p')`` -> ``data.train.pipeline.0.p`` (the ``--set`` spelling)."""
    return ".".join(str(p) for p in path)


def nearest(name: str, candidates: typing.Iterable[str]) -> str | None:
    """The candidate closest to ``name`` (difflib), or None when there are none."""
    close = difflib.get_close_matches(str(name), sorted(candidates), n=1, cutoff=0.0)
    return close[0] if close else None


class ConfigProblems:
    """The problems found in one config; each names the key and the file that set it."""

    def __init__(self, sources: Sources | None = None, cfg: dict | None = None):
        self.sources = sources or {}
        self.cfg = cfg  # the config at hand: where a peer's dataset key goes (below a MixDataset, ...)
        self.messages: list[str] = []

    def origin(self, path: tuple) -> str | None:
        """The file (or ``--set``) that set ``path``: its own record, else its nearest recorded parent's."""
        for n in range(len(path), 0, -1):
            if path[:n] in self.sources:
                return self.sources[path[:n]]
        return None

    def add(self, path: tuple, text: str) -> None:
        """Record ``text`` (which names the key) as a problem of the key at ``path``."""
        origin = self.origin(path)
        self.messages.append(f"{origin}: {text}" if origin else text)

    def value(self, path: tuple, problem: str | None) -> None:
        """Record a bad value (``problem`` from ``Rule.problem``), if any."""
        if problem:
            self.add(path, f"{dotted(path)} {problem}")

    def unknown(
        self, path: tuple, valid: typing.Iterable[str], what: str = "key", inner: tuple = (), value: Any = None
    ) -> None:
        """Record an unknown key: the new key when it is an old spelling, the key of that name in a nested part
        (``inner``: its path, e.g. a MixDataset's ``dataset``), detkit's form of an MMDetection / Detectron2 key
        (``data.samples_per_gpu``, ``data.train.metainfo``: ``detkit.peer_names``, ``value`` its value), else the
        nearest valid key."""
        valid = list(valid)
        key = path[-1]
        renamed = RENAMED_KEYS.get(key)
        if renamed in valid:
            new = dotted((*path[:-1], renamed))
            self.add(path, f"'{dotted(path)}' is an old spelling: write '{new}' ({RENAME_NOTE})")
            return
        if inner:
            self.add(
                path,
                f"unknown {what} '{dotted(path)}': it is a key of '{dotted(inner)}', write '{dotted((*inner, key))}'",
            )
            return
        peer = peer_key(path, value, self.cfg)
        if peer is not None:
            self.add(path, peer.line())
            return
        near = nearest(key, valid)
        hint = f" (nearest valid: '{dotted((*path[:-1], near))}'" if near else " ("
        listing = f"; valid: {', '.join(valid)})" if what != "key" else ")"
        self.add(path, f"unknown {what} '{dotted(path)}'{hint}{listing}")

    def raise_if_any(self) -> None:
        """Raise one ConfigError with every problem on one line."""
        if not self.messages:
            return
        more = len(self.messages) - 1
        if more == 0:
            raise ConfigError(self.messages[0])
        shown = "; ".join(self.messages[:8])
        tail = f"; and {more - 7} more" if more > 7 else ""
        raise ConfigError(f"{len(self.messages)} problems: {shown}{tail}")
