"""Checks run before the first iteration, so that a mistake is reported in seconds, not after an epoch.

Each failure raises :class:`PreflightError` (a ``ValueError``) whose message names the problem and the fix;
``tools/train.py`` prints it on one line and exits 2.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from pathlib import Path
from typing import Any


class PreflightError(ValueError):
    """A training that cannot start as configured; the message names the problem and the fix."""


def cat_ids(dataset) -> list[int] | None:
    """The dataset's label -> category id map as a list (None for datasets without one)."""
    m = getattr(dataset, "label_to_cat_id", None)
    if m is None:
        return None
    return [int(m[i]) for i in range(len(m))]


def _split_name(split: str, dataset) -> str:
    ann = getattr(dataset, "ann_file", None)
    return f"data.{split} ({ann})" if ann else f"data.{split}"


def _first_difference(a: list, b: list) -> str:
    if len(a) != len(b):
        return f"{len(a)} categories against {len(b)}"
    i = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
    return f"label {i} is {a[i]!r} in one and {b[i]!r} in the other"


def _nearest_names(train: list, val: list) -> str:
    """'val class 'cafe' is nearly train's 'café'' for each val name not in train that nearly matches one."""
    near = []
    for name in (v for v in val if v not in train):
        match = difflib.get_close_matches(str(name), [str(t) for t in train], n=1, cutoff=0.6)
        if match:
            near.append(f"val class {name!r} is nearly train's {match[0]!r}")
    return "; ".join(near[:3])


def _kept(dataset) -> list | None:
    """The ``classes`` a COCO-format dataset keeps (under a wrapper such as MixDataset), or None."""
    return getattr(getattr(dataset, "dataset", dataset), "keep_classes", None)


def _categories_fix(train_set, val_set) -> str:
    """How to give data.val data.train's classes: class folders name ``data.train``'s img_dir."""
    if type(val_set).__name__ == "ImageFolderDataset" and getattr(train_set, "img_dir", None):
        return f"set data.val.classes to data.train's img_dir ({train_set.img_dir})"
    if _kept(train_set) != _kept(val_set):
        return "give data.val the classes list of data.train (classes: keeps a subset of the json's categories)"
    return "give both splits the same categories list"


def check_categories(train_set, val_set) -> None:
    """data.train and data.val must have the same category names, in the same order, with the same ids."""
    tn, vn = getattr(train_set, "class_names", None), getattr(val_set, "class_names", None)
    train, val = _split_name("train", train_set), _split_name("val", val_set)
    if tn is not None and vn is not None and list(tn) != list(vn):
        near = _nearest_names(list(tn), list(vn))
        raise PreflightError(
            f"{train} and {val} disagree on categories ({_first_difference(list(tn), list(vn))}): "
            f"train {list(tn)[:8]}, val {list(vn)[:8]}" + (f"; {near}" if near else "") + "; "
            f"{_categories_fix(train_set, val_set)}"
        )
    ti, vi = cat_ids(train_set), cat_ids(val_set)
    if ti is not None and vi is not None and ti != vi:
        raise PreflightError(
            f"{train} and {val} give the categories different ids ({_first_difference(ti, vi)}): "
            f"train {ti[:8]}, val {vi[:8]}; give both splits the same categories list"
        )


def split_error(error: Exception, split: str, data_cfg: dict) -> str:
    """``error`` of building ``data.<split>`` as one line that names the config key: a ``classes`` that cannot
    be read becomes ``data.<split>.classes: ...`` with the fix ``data.<split>.classes=<data.train.img_dir>``."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    message = "; ".join(lines)  # a multi-line message, joined on one line, keeps its problems apart
    if not message.startswith(("classes folder ", "classes file ", "classes ")):
        return f"data.{split}: {message}"
    train_dir = (data_cfg.get("train") or {}).get("img_dir")
    fix = ""
    if split != "train" and train_dir:
        fix = f"; e.g. --set data.{split}.classes={train_dir} (the data.train.img_dir given)"
    return f"data.{split}.classes: {message}{fix}"


def check_num_classes(model_cfg: dict, class_names: list[str]) -> None:
    """``model.num_classes`` (when set) must equal the number of the training data's classes."""
    n = model_cfg.get("num_classes")
    if n is None or int(n) == len(class_names):
        return
    shown = ", ".join(class_names[:6]) + (", ..." if len(class_names) > 6 else "")
    raise PreflightError(
        f"model.num_classes is {n} but data.train has {len(class_names)} classes ({shown}); "
        f"set model.num_classes: {len(class_names)}, or null to take it from the data"
    )


def check_val_sample(val_set) -> Any:
    """data.val must hold at least one sample, and its first sample must load (image, annotations, pipeline).
    Returns that sample (the other start checks read it too)."""
    if len(val_set) == 0:
        raise PreflightError("data.val has no samples; give it images, or remove data.val to train without evaluation")
    try:
        return val_set[0]
    except Exception as e:  # noqa: BLE001  (any failure of the user's data or pipeline)
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise PreflightError(
            f"{_split_name('val', val_set)}: its first sample does not load ({type(e).__name__}: {first}); "
            "fix data.val (files, pipeline) or check it with detkit check"
        ) from e


def check_writable(work_dir: str | os.PathLike) -> None:
    """Create ``work_dir`` if needed and write (and remove) a temporary file in it."""
    d = Path(work_dir)
    try:
        d.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=d):
            pass
    except OSError as e:
        raise PreflightError(
            f"work dir {d} cannot be written ({e.strerror or type(e).__name__}); "
            "choose another --work-dir or fix its permissions"
        ) from None


def metric_names(evaluator: Any) -> list[str] | None:
    """The metric keys ``evaluator.compute()`` returns (its ``metric_names`` attribute or method); None for an
    evaluator that does not say (then any ``train.best_metric`` is accepted and the first metric tracked)."""
    names = getattr(evaluator, "metric_names", None)
    if callable(names):
        names = names()
    return None if names is None else list(names)


def check_evaluator_data(evaluator: Any, val_set) -> None:
    """The evaluator's own check of its ground truth (``evaluator.check_gt()`` where it has one, e.g. COCO's:
    every annotation needs ``area``), so that data.val fails now rather than after the first epoch."""
    check = getattr(evaluator, "check_gt", None)
    if not callable(check):
        return
    try:
        check()
    except ValueError as e:
        raise PreflightError(f"{_split_name('val', val_set)} cannot be evaluated: {e}") from e


def check_best_metric(evaluator: Any, name: str) -> None:
    """``train.best_metric`` must be one of the metrics the evaluator produces."""
    names = metric_names(evaluator)
    if names is None or name in names:
        return
    near = difflib.get_close_matches(str(name), names, n=1, cutoff=0.0)
    raise PreflightError(
        f"train.best_metric {name!r} is not a metric of {type(evaluator).__name__}; "
        f"it gives {', '.join(names)}" + (f" (e.g. train.best_metric: {near[0]})" if near else "")
    )
