"""Name -> class registries; configs build parts by calling constructors with keyword arguments."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any


class Registry:
    """A mapping from names to classes (or factory functions) of one kind of part."""

    def __init__(self, name: str):
        self.name = name
        self._items: dict[str, Callable] = {}

    def register(self, obj: Callable | None = None, *, name: str | None = None):
        """Register ``obj`` under ``name`` (default: its ``__name__``); usable as ``@R.register`` or ``@R.register()``."""

        def _add(o: Callable) -> Callable:
            key = name or o.__name__
            if key in self._items:
                raise KeyError(
                    f"{self.name} registry: '{key}' is already registered "
                    f"(by {self._items[key].__module__}); pick another name"
                )
            self._items[key] = o
            return o

        return _add(obj) if obj is not None else _add

    def get(self, name: str) -> Callable:
        """Return the class registered as ``name``; an unknown name lists the known ones and the closest."""
        if name in self._items:
            return self._items[name]
        close = difflib.get_close_matches(name, list(self._items), n=1, cutoff=0.0)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise KeyError(
            f"{self.name} registry has no '{name}'.{hint} Registered: {', '.join(sorted(self._items)) or '(none)'}"
        )

    def build(self, spec: dict[str, Any] | None, **defaults: Any) -> Any:
        """Call the class named by ``spec['type']`` with the other keys (``defaults`` fill missing keys)."""
        if spec is None:
            return None
        if not isinstance(spec, dict) or "type" not in spec:
            raise ValueError(f"{self.name} spec must be a dict with a 'type' key, got {spec!r}")
        kwargs = {k: v for k, v in spec.items() if k != "type"}
        for k, v in defaults.items():
            kwargs.setdefault(k, v)
        cls = self.get(spec["type"])
        try:
            return cls(**kwargs)
        except TypeError as e:
            raise TypeError(f"building {self.name} '{spec['type']}': {e}") from e

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self):
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.name}: {', '.join(sorted(self._items))})"


BACKBONES = Registry("backbone")
NECKS = Registry("neck")
HEADS = Registry("head")
DETECTORS = Registry("detector")
DATASETS = Registry("dataset")
TRANSFORMS = Registry("transform")
