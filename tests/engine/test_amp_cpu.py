"""train.amp=bf16 on a CPU with the real detectors: the loss starts where fp32's does and follows it on a fixed batch."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from detkit.config import load_config
from detkit.data.build import build_dataloader
from detkit.engine.runtime import move_batch
from detkit.models import build_model

ROOT = Path(__file__).resolve().parents[2]
# config, overrides, whether the loss falls over 8 steps on one batch (YOLO's rises at first in fp32 too: the
# task-aligned assigner finds more positives as the boxes and scores align, and the losses are sums over them)
CASES = {
    "yolo": ("yolo/yolo_n_shapes.yaml", ["data.train.size=64", "+model.backbone.width_multiple=0.125"], False),
    "faster_rcnn": (
        "faster_rcnn/faster_rcnn_r18_fpn_shapes.yaml",
        ["data.train.pipeline=[{type: ResizeShortestEdge, short_sizes: [128], max_size: 128}]"],
        True,
    ),
}


def _losses(model: torch.nn.Module, batch: dict, amp: bool, steps: int) -> list[float]:
    """The summed loss of ``steps`` AdamW steps on one batch, the forward under bf16 autocast when ``amp``."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-4)
    out = []
    for _ in range(steps):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = sum(v.float() for v in model.loss(batch).values())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        out.append(float(loss.detach()))
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_bf16_autocast_trains_like_fp32(name, shapes):
    path, extra, falls = CASES[name]
    overrides = [
        f"data.train.ann_file={shapes / 'train.json'}",
        f"data.train.img_dir={shapes / 'train'}",
        "data.batch_size=2",
        "data.num_workers=0",
        *extra,
    ]
    cfg = load_config(ROOT / "configs" / path, overrides)
    batch = move_batch(next(iter(build_dataloader(cfg, "train", seed=0))), torch.device("cpu"))
    torch.manual_seed(0)
    model = build_model(cfg, class_names=["a", "b", "c", "d"]).train()
    twin = copy.deepcopy(model)
    torch.manual_seed(1)  # the samplers of the two-stage heads draw from the global generator
    fp32 = _losses(model, batch, amp=False, steps=8)
    torch.manual_seed(1)
    bf16 = _losses(twin, batch, amp=True, steps=8)
    assert all(torch.isfinite(torch.tensor(bf16)))
    assert bf16[0] == pytest.approx(fp32[0], rel=0.05)  # same weights and batch: bf16 rounding only
    assert bf16[0] != fp32[0]  # the forward really ran in bf16
    # the same path, give or take (the R-CNN samplers draw other RoIs)
    assert sum(bf16) == pytest.approx(sum(fp32), rel=0.3)
    if falls:
        assert min(bf16[-3:]) < 0.8 * bf16[0] and min(fp32[-3:]) < 0.8 * fp32[0]


def test_bf16_on_a_cpu_without_fast_bf16_warns(monkeypatch, caplog):
    from detkit.engine import runtime

    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: False)
    with caplog.at_level("WARNING", logger="detkit"):
        assert runtime.resolve_amp("bf16", torch.device("cpu")) == torch.bfloat16
    assert "may be slower than fp32" in caplog.text and "--amp bf16" in caplog.text
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: True)
    caplog.clear()
    with caplog.at_level("WARNING", logger="detkit"):
        assert runtime.resolve_amp("bf16", torch.device("cpu")) == torch.bfloat16
    assert not caplog.text


def test_cpu_has_fast_bf16_answers():
    from detkit.engine.runtime import cpu_has_fast_bf16

    assert isinstance(cpu_has_fast_bf16(), bool)  # torch's private check exists in this torch, or True
