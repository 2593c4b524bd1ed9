"""Analysis fixtures: a tiny shapes validation set and seeded perturbed-ground-truth predictions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_coco import perturb  # noqa: E402


@pytest.fixture(scope="session")
def shapes(tmp_path_factory):
    """12 shapes images of 96 px (val split only): dict of make_shapes paths."""
    from detkit.data.synthetic import make_shapes

    return make_shapes(
        tmp_path_factory.mktemp("shapes"), num_train=0, num_val=12, size=(96, 96), seed=3, empty_fraction=0.1
    )


@pytest.fixture(scope="session")
def shapes_preds(shapes, tmp_path_factory):
    """(gt json path, predictions json path, gt dict, predictions list) for the shapes set."""
    gt = json.loads(shapes["val_ann_file"].read_text())
    preds = perturb(gt, seed=1)
    path = tmp_path_factory.mktemp("preds") / "predictions.json"
    path.write_text(json.dumps(preds))
    return shapes["val_ann_file"], path, gt, preds
