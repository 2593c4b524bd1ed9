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
    from detkit.engine import common
    monkeypatch.setattr(common, "build_dataset", detkit_toy.toy_build_dataset)
    monkeypatch.setattr(common, "build_dataloader", detkit_toy.toy_build_dataloader)
    monkeypatch.setattr(common, "build_evaluator", detkit_toy.toy_build_evaluator)
    return detkit_toy
