"""Checks of a search before its first trial: the metric names a metric of data.val's evaluator, the data
the trials train on builds, and every searched value passes the checks a trial's config gets (a mistake there
would fail every trial, or every trial that draws that value)."""

from __future__ import annotations

import difflib
import itertools
import json
from typing import Any

from detkit.config import ConfigError
from detkit.config_check import check_config, nearest
from detkit.config_overrides import get_by_path
from detkit.tune.space import Param, apply_params

MAX_COMBINATIONS = 256  # of the other categorical choices a value is checked with (more: the first 256)


def config_problem(cfg: dict) -> str | None:
    """The problem a trial's checks find in ``cfg`` (a resolved config), before any data or model is built: the
    config check (``check_config``), then the Trainer's refusal of a key that the optimizer's or scheduler's
    ``type`` never reads (``milestones`` with cosine, ``momentum`` with AdamW); None when it passes."""
    from detkit.engine.optim import unused_type_keys

    try:
        check_config(cfg)
    except ConfigError as e:
        return str(e)
    unused = unused_type_keys(cfg)
    return "; ".join(message for _, message in unused) if unused else None


def check_trial_config(cfg: dict) -> None:
    """A ConfigError when :func:`config_problem` finds one (the check of each trial's sampled config)."""
    problem = config_problem(cfg)
    if problem is not None:
        raise ConfigError(problem)


def _inside(p: Param, cfg: dict) -> Any:
    """A value of range ``p`` besides its ends: for a range of steps (an int range, a float one with ``step``) the
    config's own value of the key when it is one of the steps (the value a type that does not read the key
    accepts, drawn by some trials), else the step nearest the middle; for a continuous range its middle."""
    step = p.step or (1 if p.kind == "int" else None)
    mid = (p.low + p.high) / 2
    if step is None:
        return mid
    node = get_by_path(cfg, p.key)
    on_grid = isinstance(node, (int, float)) and not isinstance(node, bool) and p.low <= node <= p.high
    if on_grid and abs((node - p.low) / step - round((node - p.low) / step)) < 1e-9:
        return node
    value = p.low + round((mid - p.low) / step) * step
    return int(value) if p.kind == "int" else value


def _draws(params: list[Param], fixed: dict[str, Any], cfg: dict | None = None) -> list[dict[str, Any]]:
    """The values of the searched keys that a check tries, ``fixed``'s as given, the others drawn: each combination
    of their categorical choices, with their ranges at the low bounds, at the high bounds, then inside
    (:func:`_inside`: the config's own value, or the middle)."""
    others = [p for p in params if p.key not in fixed]
    choices = [[(p.key, c) for c in p.choices] for p in others if p.kind == "categorical"]
    ranges = [p for p in others if p.kind != "categorical"]
    ends = [{p.key: p.low for p in ranges}, {p.key: p.high for p in ranges}] if ranges else [{}]
    if ranges:
        ends.append({p.key: _inside(p, cfg or {}) for p in ranges})
    combos = itertools.islice(itertools.product(*choices), MAX_COMBINATIONS)
    return [{**dict(combo), **end, **fixed} for combo in combos for end in ends]


def draw_problem(cfg: dict, params: list[Param], fixed: dict[str, Any]) -> str | None:
    """Why every trial that draws ``fixed`` (searched key -> value; {}: any trial) fails :func:`config_problem`,
    the other searched keys drawn as :func:`_draws` tries them; None when one of those draws passes."""
    first = None
    for draw in _draws(params, fixed, cfg):
        problem = config_problem(apply_params(cfg, draw))
        if problem is None:
            return None
        first = first or (draw, problem)
    draw, problem = first
    if not fixed or config_problem(apply_params(cfg, fixed)) == problem:
        return problem  # the same without the other searched values: theirs is no part of it
    shown = ", ".join(f"{k} {json.dumps(v)}" for k, v in draw.items() if k not in fixed)
    return f"{problem} (with the searched {shown})"


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
