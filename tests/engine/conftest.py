"""Engine test fixtures: the toy parts of detkit_toy.py, installed into the trainer's builders."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import detkit_toy  # noqa: E402


@pytest.fixture
def toy(monkeypatch):
    """The detkit_toy module, with the trainer building the toy data loader and evaluator."""
    from detkit.engine import builders

    monkeypatch.setattr(builders, "build_dataset", detkit_toy.toy_build_dataset)
    monkeypatch.setattr(builders, "build_dataloader", detkit_toy.toy_build_dataloader)
    monkeypatch.setattr(builders, "build_evaluator", detkit_toy.toy_build_evaluator)
    return detkit_toy


@pytest.fixture(scope="session")
def shapes(tmp_path_factory):
    """A tiny shapes dataset (4 train, 2 val images of 64x64), written once and only read by the tests."""
    from detkit.data.synthetic import make_shapes

    out = tmp_path_factory.mktemp("shapes")
    make_shapes(out, num_train=4, num_val=2, size=(64, 64), seed=0)
    return out


@pytest.fixture
def detkit_log():
    """The messages of the ``detkit`` logger while the test runs (it does not propagate: caplog sees them only by
    chance of the tests run before)."""
    import logging

    messages: list[str] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("detkit")
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)
