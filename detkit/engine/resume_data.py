"""What a resume may not change: the data the run trains on and is measured on.

A resumed run goes on with the checkpoint's weights, optimizer and best result. Resumed on other data (other
files or folders of ``data.train`` / ``data.val``, other classes), its ``latest.pth`` would hold other class names
than its ``best.pth``, and each new evaluation would be compared with a best measured on the old data. Such a
resume is refused (:func:`check_resume_data`) unless the caller allows it (``Trainer(allow_data_change=True)``,
``detkit train --allow-data-change``): then the best so far is dropped, so the next evaluation on the new data
writes best.pth (the old one is kept beside it as ``best.before-resume-N.pth``). Other keys (epochs, LR, batch
size, pipelines) may change as before.
"""

from __future__ import annotations

import os
from typing import Any

from detkit.engine.preflight import PreflightError

# the keys of a dataset spec that say which data it reads (files, folders, the part of them) and its classes
DATA_KEYS = ("ann_file", "img_dir", "mask_dir", "label_dir", "root", "data_yaml", "split_file", "split")
CLASS_KEYS = ("classes", "class_names")
PATH_KEYS = ("ann_file", "img_dir", "mask_dir", "label_dir", "root", "data_yaml", "split_file", "classes")
SPLITS = ("train", "val")
SHOWN = 2  # changes named in the message; the others are counted


def _normalised(key: str, value: Any) -> Any:
    """A path as an absolute, normalised one (``data/x`` and ``./data/x/`` are the same folder); a list as a list."""
    if key in PATH_KEYS and isinstance(value, (str, os.PathLike)) and str(value):
        return os.path.normpath(os.path.abspath(os.fspath(value)))
    return list(value) if isinstance(value, tuple) else value


def data_values(split_spec: Any, path: str) -> dict[str, Any]:
    """``{dotted key: value}`` of the data keys (:data:`DATA_KEYS`, :data:`CLASS_KEYS`) of one split's dataset spec,
    wrappers' inner ``dataset`` included, pipelines left out; paths normalised (relative to this folder)."""
    out: dict[str, Any] = {}
    if isinstance(split_spec, dict):
        for key, value in split_spec.items():
            where = f"{path}.{key}"
            if key in DATA_KEYS or key in CLASS_KEYS:
                out[where] = _normalised(key, value)
            elif key != "pipeline" and isinstance(value, (dict, list)):
                out.update(data_values(value, where))
    elif isinstance(split_spec, list):  # (a list of datasets)
        for i, value in enumerate(split_spec):
            out.update(data_values(value, f"{path}.{i}"))
    return out


def _show(value: Any, limit: int = 50) -> str:
    """A value in a message: ``None`` as ``(unset)``, a long list cut to its first items."""
    if value is None:
        return "(unset)"
    if isinstance(value, list):
        text = ", ".join(map(str, value[:6])) + (", ..." if len(value) > 6 else "")
        return f"[{text}]"
    text = str(value)
    return text if len(text) <= limit else "..." + text[-limit:]


def data_changes(old_cfg: Any, new_cfg: dict, old_names: Any, new_names: Any) -> list[str]:
    """What differs between the checkpoint's data and the config's, as ``key old -> new`` texts: the data keys of
    ``data.train`` and ``data.val`` (a split that is null or missing in either config is not compared: no
    evaluation to compare), after the model's class names. [] when nothing did."""
    changes = []
    if old_names is not None and new_names is not None and list(old_names) != list(new_names):
        changes.append(f"class names {_show(list(old_names))} -> {_show(list(new_names))}")
    old_data = (old_cfg or {}).get("data") if isinstance(old_cfg, dict) else None
    new_data = new_cfg.get("data") if isinstance(new_cfg, dict) else None
    if isinstance(old_data, dict) and isinstance(new_data, dict):
        for split in SPLITS:
            old_spec, new_spec = old_data.get(split), new_data.get(split)
            if not (isinstance(old_spec, dict) and isinstance(new_spec, dict)):
                continue
            old, new = data_values(old_spec, f"data.{split}"), data_values(new_spec, f"data.{split}")
            for key in [*old, *(k for k in new if k not in old)]:
                if old.get(key) != new.get(key):
                    changes.append(f"{key} {_show(old.get(key))} -> {_show(new.get(key))}")
    return changes


def _listed(changes: list[str]) -> str:
    more = len(changes) - SHOWN
    return "; ".join(changes[:SHOWN]) + (f"; and {more} more" if more > 0 else "")


def _best_text(best: Any) -> str:
    if not isinstance(best, dict) or "value" not in best:
        return ""
    return f" (its best, {best.get('metric')} {best['value']:.4f}, was measured on the old data)"


def check_resume_data(tr, meta: dict, path, allow: bool) -> list[str]:
    """Refuse to resume trainer ``tr`` from the checkpoint ``path`` (its ``meta``) on other data than the run's
    (:func:`data_changes`), with one line naming each change and the ways on; with ``allow``, return the changes
    (for a warning) instead. Returns [] when the data is the same."""
    changes = data_changes(meta.get("config"), tr.cfg, meta.get("class_names"), getattr(tr.model, "class_names", None))
    if not changes or allow:
        return changes
    work = tr.work_dir
    raise PreflightError(
        f"resuming {path} on other data than its run's: {_listed(changes)}{_best_text(meta.get('best'))}. Train on "
        f"it in a new --work-dir (--load-from {path} keeps the weights), resume with the run's data "
        f"({work / 'config.yaml'}), or pass --allow-data-change (allow_data_change=True) to go on (the best measured "
        "anew)"
    )
