"""Checks of a search before its first trial: the metric names a metric of data.val's evaluator, and the data
the trials train on builds (a mistake there would fail every trial)."""

from __future__ import annotations

import difflib

from detkit.config import ConfigError
from detkit.config_check import nearest


def check_data_and_metric(cfg: dict, metric: str | None) -> str:
    """Build data.train and data.val (as each trial will) and data.val's evaluator; ``metric`` must be one of the
    evaluator's metrics. A ConfigError (or the dataset's own error: a missing file, bad annotations) otherwise.

    Returns the metric: ``metric``, or when None ``bbox/AP`` where the evaluator gives it (the default of every
    study made so far: a study is continued with the metric it was made for), else the config's
    ``train.best_metric`` if the evaluator gives it, else the evaluator's main (first) metric, e.g. ``cls/top1``
    for a classifier, ``sem/mIoU`` for a segmentor."""
    from detkit.engine import builders
    from detkit.engine.preflight import metric_names

    data = cfg.get("data") or {}
    if not isinstance(data.get("val"), dict):
        raise ConfigError(
            "the config has no data.val: a trial's value is its evaluation on data.val; give the config a "
            "validation set (--set data.val.ann_file=... data.val.img_dir=... for a COCO dataset)"
        )
    builders.build_dataset(data["train"])
    evaluator = builders.build_evaluator(cfg, builders.build_dataset(data["val"]))
    names = metric_names(evaluator)
    main = main_metric(cfg, names)
    if metric is None:
        return "bbox/AP" if names is None or "bbox/AP" in names else main or "bbox/AP"
    if names is not None and metric not in names:
        near = suggestion(metric, names, main)
        raise ConfigError(
            f"--metric {metric!r} is not a metric of {type(evaluator).__name__} (data.val's evaluator); it gives "
            f"{', '.join(names)}" + (f" (nearest: {near})" if near else "")
        )
    return metric


def main_metric(cfg: dict, names: list[str] | None) -> str | None:
    """The config's ``train.best_metric`` when the evaluator gives it (or does not say what it gives), else the
    evaluator's first metric."""
    best = (cfg.get("train") or {}).get("best_metric")
    if isinstance(best, str) and best and (names is None or best in names):
        return best
    return names[0] if names else None


def suggestion(metric: str, names: list[str], main: str | None) -> str | None:
    """The metric to suggest for a wrong ``--metric``: the string-nearest one of the same family (``bbox/APx``:
    ``bbox/AP``; the main metric on a tie, ``cls/top``: ``cls/top1``), else the evaluator's main metric
    (``bbox/AP`` for a classifier: ``cls/top1``)."""
    family = metric.split("/")[0] + "/" if "/" in metric else None
    same = [n for n in names if family and n.startswith(family)]
    if not same:
        return main or nearest(metric, names)

    def score(name: str) -> tuple[float, bool]:
        return difflib.SequenceMatcher(None, metric, name).ratio(), name == main

    return max(same, key=score)
