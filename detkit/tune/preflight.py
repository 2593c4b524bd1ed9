"""Checks of a search before its first trial: the metric names a metric of data.val's evaluator, and the data
the trials train on builds (a mistake there would fail every trial)."""

from __future__ import annotations

from detkit.config import ConfigError
from detkit.config_check import nearest


def check_data_and_metric(cfg: dict, metric: str) -> None:
    """Build data.train and data.val (as each trial will) and data.val's evaluator; ``metric`` must be one of the
    evaluator's metrics. A ConfigError (or the dataset's own error: a missing file, bad annotations) otherwise."""
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
    if names is not None and metric not in names:
        near = nearest(metric, names)
        raise ConfigError(
            f"--metric {metric!r} is not a metric of {type(evaluator).__name__} (data.val's evaluator); it gives "
            f"{', '.join(names)}" + (f" (nearest: {near})" if near else "")
        )
