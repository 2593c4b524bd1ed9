"""tune's default --metric and its hint for a wrong one (detkit.tune.preflight), with stand-in data."""

from __future__ import annotations

import pytest

from detkit.config import ConfigError
from detkit.tune import preflight


class _ClsEvaluator:
    metric_names = ("cls/top1", "cls/top5", "cls/mean_acc", "cls/macro_f1")


class _CocoEvaluator:
    metric_names = ("bbox/AP", "bbox/AP50", "segm/AP", "segm/AP50")


@pytest.fixture
def evaluator(monkeypatch):
    from detkit.engine import builders

    chosen = {}
    monkeypatch.setattr(builders, "build_dataset", lambda cfg: object())
    monkeypatch.setattr(builders, "build_evaluator", lambda cfg, ds: chosen["type"]())
    return chosen


def _cfg(best: str | None) -> dict:
    return {"data": {"train": {}, "val": {}}, "train": {} if best is None else {"best_metric": best}}


@pytest.mark.parametrize(
    "kind, best, expected",
    [
        (_ClsEvaluator, "cls/top1", "cls/top1"),  # a classifier config (configs/_base_/schedules/cls_small_data)
        (_ClsEvaluator, "bbox/AP", "cls/top1"),  # runtime.yaml's default, not the classifier's: its main metric
        (_ClsEvaluator, None, "cls/top1"),
        # a COCO evaluator: bbox/AP, the default every existing study was made with (one made for Mask R-CNN
        # without --metric is continued by the same command), not Mask R-CNN's best_metric segm/AP
        (_CocoEvaluator, "segm/AP", "bbox/AP"),
        (_CocoEvaluator, "bbox/AP", "bbox/AP"),
    ],
)
def test_the_default_metric_is_bbox_ap_else_the_configs_best_metric_else_the_main(evaluator, kind, best, expected):
    evaluator["type"] = kind
    assert preflight.check_data_and_metric(_cfg(best), None) == expected
    assert preflight.check_data_and_metric(_cfg(best), "cls/top5" if kind is _ClsEvaluator else "bbox/AP50") in (
        "cls/top5",
        "bbox/AP50",
    )


@pytest.mark.parametrize(
    "kind, metric, hint",
    [
        (_ClsEvaluator, "bbox/AP", "(nearest: cls/top1)"),  # another family: the main metric, not cls/top5
        (_ClsEvaluator, "cls/top", "(nearest: cls/top1)"),
        (_ClsEvaluator, "cls/macro-f1", "(nearest: cls/macro_f1)"),
        (_CocoEvaluator, "bbox/APx", "(nearest: bbox/AP)"),
    ],
)
def test_a_wrong_metric_names_the_metric_meant(evaluator, kind, metric, hint):
    evaluator["type"] = kind
    with pytest.raises(ConfigError) as e:
        preflight.check_data_and_metric(_cfg("bbox/AP"), metric)
    assert str(e.value).startswith(f"--metric {metric!r} is not a metric of {kind.__name__}") and hint in str(e.value)


def test_the_cli_leaves_the_metric_to_the_config():
    from detkit.cli.tune import parse_args

    args = parse_args(["c.yaml", "--space", "s.yaml", "--trials", "2", "--work-dir", "w"])
    assert args.metric is None
