"""Peers in CI: tests that compare detkit with a peer package skip where it is missing, except under CI.

`make test` (so `.ci/run`) installs the peers (setup.cfg's `peers` extra) and sets DETKIT_REQUIRE_PEERS=1:
then a missing or broken peer stops the run at its start instead of skipping the comparisons silently.
"""

from __future__ import annotations

import importlib
import os

import pytest
import torch
from PIL import Image

PIL_OPEN = Image.open  # PIL's own, taken before any test module imports a peer
TORCH_SAVE = torch.save
# what importing Ultralytics changes for the whole process: it sets OMP_NUM_THREADS=1 (a tool started by a later
# test then trains with another thread count than the test's in-process reference: different float sums), swaps
# torch.save for its own and PIL.Image.open for a HEIF-installing wrapper
PEER_ENV = (
    "OMP_NUM_THREADS",
    "NUMEXPR_MAX_THREADS",
    "LD_LIBRARY_PATH",
    "TF_CPP_MIN_LOG_LEVEL",
    "TORCH_CPP_LOG_LEVEL",
    "KINETO_LOG_LEVEL",
)
ENV_BEFORE = {k: os.environ.get(k) for k in PEER_ENV}


@pytest.fixture(autouse=True)
def undo_peer_patches():
    """Each test starts with the process as detkit alone leaves it, whatever peer modules were imported before."""
    Image.open = PIL_OPEN
    torch.save = TORCH_SAVE
    for key, value in ENV_BEFORE.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    yield


# the modules the peer tests import: tests/models/test_ultralytics_equivalence.py, tests/tools/test_benchmark.py,
# tests/tools/test_convert_weights.py (Ultralytics), tests/evaluation/test_coco.py (faster-coco-eval)
PEER_MODULES = (
    "ultralytics.nn.tasks",
    "ultralytics.cfg",
    "ultralytics.utils.nms",
    "ultralytics.data.augment",
    "faster_coco_eval",
)


@pytest.fixture
def two_gpus(monkeypatch):
    """A machine with two (pretend) GPUs and no launcher: parse_device accepts cuda:0 / cuda:1; returns the list
    of torch.cuda.set_device calls (tests/utils/test_device.py, tests/engine/test_dist.py)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    current = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: current.append(torch.device(d)))
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "SLURM_NTASKS"):
        monkeypatch.setenv(k, "x")  # recorded, so that teardown restores what was there
        monkeypatch.delenv(k)
    return current


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("DETKIT_REQUIRE_PEERS", "") in ("", "0"):
        return
    broken = []
    for name in PEER_MODULES:
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001  (an ImportError, or a peer failing at import)
            broken.append(f"{name}: {type(e).__name__}: {e}")
    if broken:
        raise pytest.UsageError(
            "DETKIT_REQUIRE_PEERS is set but peer packages do not import (install them with `make peers`):\n  "
            + "\n  ".join(broken)
        )
