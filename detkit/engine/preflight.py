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


def check_categories(train_set, val_set) -> None:
    """data.train and data.val must have the same category names, in the same order, with the same ids."""
    tn, vn = getattr(train_set, "class_names", None), getattr(val_set, "class_names", None)
    train, val = _split_name("train", train_set), _split_name("val", val_set)
    if tn is not None and vn is not None and list(tn) != list(vn):
        raise PreflightError(
            f"{train} and {val} disagree on categories ({_first_difference(list(tn), list(vn))}): "
            f"train {list(tn)[:8]}, val {list(vn)[:8]}; give both splits the same categories list"
        )
    ti, vi = cat_ids(train_set), cat_ids(val_set)
    if ti is not None and vi is not None and ti != vi:
        raise PreflightError(
            f"{train} and {val} give the categories different ids ({_first_difference(ti, vi)}): "
            f"train {ti[:8]}, val {vi[:8]}; give both splits the same categories list"
        )


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


def check_val_sample(val_set) -> None:
    """data.val must hold at least one sample, and its first sample must load (image, annotations, pipeline)."""
    if len(val_set) == 0:
        raise PreflightError("data.val has no samples; give it images, or remove data.val to train without evaluation")
    try:
        val_set[0]
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
