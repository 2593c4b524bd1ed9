"""What a resume may not change: the classes of the run, and (with a warning) the data it is measured on.

A resumed run goes on with the checkpoint's weights, optimizer and best result. Resumed with other class names
(another dataset, or the same labels named in another order), its ``latest.pth`` would hold other class names than
its ``best.pth`` and label k would mean two things in one run: refused (:func:`check_resume_data`) unless the caller
allows it (``Trainer(allow_data_change=True)``, ``detkit train --allow-data-change``). Other data with the same
classes (other files or folders of ``data.train`` / ``data.val``, another held-out split) is a warning naming what
changed: paths change legitimately (a project moved, data staged to a job's scratch folder, a resume from another
folder) and cannot be told from other data by their names. With ``allow_data_change`` the best so far is dropped,
so the next evaluation on the new data writes best.pth (the old one is kept beside it as
``best.before-resume-N.pth``). Other keys (epochs, LR, batch size, pipelines) may change as before.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from detkit.engine.preflight import PreflightError

logger = logging.getLogger("detkit")

# the keys of a dataset spec that say which data it reads (files, folders, the part of them) and its classes
DATA_KEYS = (
    *("ann_file", "img_dir", "mask_dir", "label_dir", "root", "data_yaml", "split_file", "split"),
    *("val_fraction", "subset", "split_seed", "label_map", "reduce_zero_label", "background"),
)
CLASS_KEYS = ("classes", "class_names")
PATH_KEYS = ("ann_file", "img_dir", "mask_dir", "label_dir", "root", "data_yaml", "split_file", "classes")
SPLITS = ("train", "val")
SHOWN = 2  # changes named in the message; the others are counted


def _normalised(key: str, value: Any) -> Any:
    """A value as compared: paths as given (:func:`_same` resolves them), a tuple as a list."""
    return list(value) if isinstance(value, tuple) else value


def _same(key: str, old: Any, new: Any) -> bool:
    """Whether two values of ``key`` name the same data: equal as given, or paths that resolve (links followed,
    relative to this folder) to the same file or folder."""
    if old == new:
        return True
    if (
        key.rsplit(".", 1)[-1] in PATH_KEYS
        and isinstance(old, (str, os.PathLike))
        and isinstance(new, (str, os.PathLike))
    ):
        return os.path.realpath(os.fspath(old)) == os.path.realpath(os.fspath(new))
    return False


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


def class_change(old_names: Any, new_names: Any) -> str | None:
    """``class names [old] -> [new]`` when the model's class names differ from the checkpoint's, else None."""
    if old_names is not None and new_names is not None and list(old_names) != list(new_names):
        return f"class names {_show(list(old_names))} -> {_show(list(new_names))}"
    return None


def data_changes(old_cfg: Any, new_cfg: dict) -> list[str]:
    """What differs between the checkpoint's data and the config's, as ``key old -> new`` texts: the data keys of
    ``data.train`` and ``data.val`` (a split that is null or missing in either config is not compared: no
    evaluation to compare). [] when nothing did."""
    changes = []
    old_data = (old_cfg or {}).get("data") if isinstance(old_cfg, dict) else None
    new_data = new_cfg.get("data") if isinstance(new_cfg, dict) else None
    if isinstance(old_data, dict) and isinstance(new_data, dict):
        for split in SPLITS:
            old_spec, new_spec = old_data.get(split), new_data.get(split)
            if not (isinstance(old_spec, dict) and isinstance(new_spec, dict)):
                continue
            old, new = data_values(old_spec, f"data.{split}"), data_values(new_spec, f"data.{split}")
            for key in [*old, *(k for k in new if k not in old)]:
                if not _same(key, old.get(key), new.get(key)):
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
    """Check a resume of trainer ``tr`` from the checkpoint ``path`` (its ``meta``): other class names are refused
    with one line naming them and the ways on; other data with the same classes is a warning (the best so far was
    measured on the old data). With ``allow`` nothing is refused and every change is returned (the caller drops the
    best); else [] (the best is kept)."""
    classes = class_change(meta.get("class_names"), getattr(tr.model, "class_names", None))
    data = data_changes(meta.get("config"), tr.cfg)
    if allow:
        return [c for c in (classes, *data) if c]
    run_config = Path(path).parent / "config.yaml"
    if classes is not None:
        raise PreflightError(
            f"resuming {path} with other classes than its run's: {classes}"
            f"{'; ' + _listed(data) if data else ''}{_best_text(meta.get('best'))}. Label k would mean another class "
            f"in latest.pth than in best.pth: train in a new --work-dir (--load-from {path} keeps the weights), resume "
            f"with the run's config ({run_config}), or pass --allow-data-change (allow_data_change=True) to go on "
            "(the best measured anew)"
        )
    if data and tr.main:
        logger.warning(
            "resuming %s on other data than its run's (or the same data at another path): %s%s; new evaluations are "
            "compared with that best. Pass --allow-data-change (allow_data_change=True) to measure the best anew",
            path, _listed(data), _best_text(meta.get("best")),
        )  # fmt: skip
    return []
