"""detkit.utils.amp: autocast contexts where torch has no autocast for the device (MPS before torch 2.5)."""

from __future__ import annotations

import contextlib

import pytest
import torch

from detkit.utils import amp


def test_contexts_where_autocast_exists():
    assert amp.autocast_available("cpu")
    assert isinstance(amp.autocast("cpu", None), contextlib.nullcontext)  # float32: no region
    with amp.autocast("cpu", torch.bfloat16):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
        with amp.autocast_off("cpu"):
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


@pytest.fixture
def old_torch(monkeypatch):
    """A torch without autocast for any device, whose torch.autocast refuses the device type even disabled
    (what torch < 2.5 does for "mps")."""
    monkeypatch.setattr(torch.amp, "is_autocast_available", lambda device_type: False)

    def refuse(device_type, *args, **kwargs):
        raise RuntimeError(f"User specified an unsupported autocast device_type '{device_type}'")

    monkeypatch.setattr(torch, "autocast", refuse)


def test_a_device_without_autocast_trains_and_predicts_in_float32(old_torch):
    """YOLO's loss (decode, the one-hot BCE) and mask pasting open no autocast region where none exists."""
    from detkit.models.detectors.one_stage import OneStageDetector
    from detkit.ops.masks import paste_masks

    assert not amp.autocast_available("cpu") and isinstance(amp.autocast_off("cpu"), contextlib.nullcontext)
    torch.manual_seed(0)
    model = OneStageDetector(
        backbone={"type": "CSPDarknet", "depth_multiple": 0.33, "width_multiple": 0.125},
        neck={"type": "PAFPN"},
        head={"type": "YOLOHead"},
        num_classes=3,
    ).train()
    batch = {
        "images": torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8),
        "image_sizes": [(64, 64)],
        "targets": [{"boxes": torch.tensor([[8.0, 8.0, 40.0, 48.0]]), "labels": torch.tensor([1])}],
    }
    with amp.autocast("cpu", None):
        losses = model.loss(batch)
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert paste_masks(torch.rand(2, 1, 28, 28), torch.tensor([[1.0, 2, 30, 40], [5, 5, 20, 20]]), (50, 60)).shape == (
        2,
        1,
        50,
        60,
    )


def test_bf16_amp_where_torch_has_no_autocast_is_a_config_error(old_torch):
    from detkit.config import ConfigError
    from detkit.engine.runtime import resolve_amp

    with pytest.raises(ConfigError, match=r"no autocast on mps \(MPS: torch >= 2.5\); use train.amp=false"):
        resolve_amp("bf16", torch.device("mps"))
    assert resolve_amp(False, torch.device("mps")) is None
