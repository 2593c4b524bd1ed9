"""Search fixtures: the engine tests' ``toy`` fixture (tests/engine/conftest.py: the toy parts of detkit_toy.py,
milliseconds per trial, installed into the trainer's builders) and a toy config resolved as the tool resolves one."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "engine_test_fixtures", Path(__file__).resolve().parents[1] / "engine" / "conftest.py"
)
_engine_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_engine_fixtures)
toy = _engine_fixtures.toy  # the trainer (and the search's pre-flight) build the toy data and evaluator


@pytest.fixture
def toy_cfg(toy):
    """A resolved toy config: 2 epochs of 4 iterations, evaluated after each."""
    from detkit.engine import resolve_config

    return resolve_config(toy.toy_config(max_epochs=2, max_nonfinite=1))
