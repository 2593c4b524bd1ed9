"""Parameter groups, LR scaling and the per-iteration LR schedules."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from detkit.engine.optim import OPTIMIZER_DEFAULTS, LRSchedule, build_optimizer, param_groups, unused_type_keys


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1, bias=False))
        self.head = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def _group_of(groups, name):
    return next(g for g in groups if name in g["param_names"])


def test_param_groups_decay_and_lr_mult():
    cfg = {
        **OPTIMIZER_DEFAULTS,
        "weight_decay": 1e-4,
        "norm_decay": 0.0,
        "bias_decay": 0.0,
        "lr_mult": {"backbone": 0.1, "backbone.2": 0.5},
    }
    groups = param_groups(Net(), cfg)
    names = [n for g in groups for n in g["param_names"]]
    assert "frozen.weight" not in names and len(names) == len(set(names)) == 11
    assert _group_of(groups, "backbone.0.weight")["weight_decay"] == 1e-4
    for n in ("backbone.0.bias", "backbone.1.weight", "backbone.1.bias", "head.1.weight", "head.0.bias"):
        assert _group_of(groups, n)["weight_decay"] == 0.0, n
    assert _group_of(groups, "backbone.0.weight")["lr_mult"] == 0.1
    assert _group_of(groups, "backbone.2.weight")["lr_mult"] == 0.5  # the longest prefix wins
    assert _group_of(groups, "head.0.weight")["lr_mult"] == 1.0


def test_optimizer_linear_scaling_and_types():
    net = Net()
    opt = build_optimizer(
        net, {"type": "SGD", "lr": 0.02, "base_batch_size": 16, "lr_mult": {"head": 2.0}}, total_batch=4
    )
    lrs = {g["lr_mult"]: g["initial_lr"] for g in opt.param_groups}
    assert lrs[1.0] == pytest.approx(0.005) and lrs[2.0] == pytest.approx(0.01)
    opt = build_optimizer(net, {"type": "AdamW", "lr": 1e-3, "base_batch_size": None}, total_batch=64)
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["initial_lr"] == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="optimizer.type"):
        build_optimizer(net, {"type": "Lion"})


def test_warmup_is_capped_to_share_of_run():
    s = LRSchedule.from_config(
        {"type": "multistep", "milestones": [], "warmup_iters": 500, "warmup_ratio": 0.001, "warmup_max_share": 0.2},
        max_epochs=10,
        iters_per_epoch=10,
    )
    assert s.warmup_iters == 20  # 500 would be 5x the 100-iteration run
    assert s.factor(0) == pytest.approx(0.001)
    assert s.factor(10) == pytest.approx(0.001 * 0.5 + 0.5)
    assert s.factor(20) == 1.0 and s.factor(99) == 1.0


def test_multistep_cosine_linear_values():
    m = LRSchedule("multistep", max_iters=120, iters_per_epoch=10, milestones=[8, 11], gamma=0.1)
    assert [m.factor(i) for i in (0, 79, 80, 109, 110, 119)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    c = LRSchedule("cosine", max_iters=100, min_lr_ratio=0.05)
    assert c.factor(0) == 1.0 and c.factor(100) == pytest.approx(0.05)
    assert c.factor(50) == pytest.approx(0.05 + 0.95 * 0.5)
    lin = LRSchedule("linear", max_iters=100, min_lr_ratio=0.0, warmup_iters=10, warmup_ratio=0.1, warmup_max_share=0.5)
    assert lin.factor(5) == pytest.approx(0.1 * 0.5 + 0.5)  # the decay starts after the warm-up
    assert lin.factor(10) == 1.0 and lin.factor(55) == pytest.approx(0.5) and lin.factor(100) == 0.0
    with pytest.raises(ValueError, match="scheduler.type"):
        LRSchedule("poly")


def test_apply_sets_group_lrs_from_initial_lr():
    opt = build_optimizer(Net(), {"lr": 0.1, "base_batch_size": None, "lr_mult": {"backbone": 0.1}})
    s = LRSchedule("multistep", max_iters=20, iters_per_epoch=10, milestones=[1], gamma=0.5)
    assert s.apply(opt, 15) == pytest.approx(0.05)
    assert sorted(g["lr"] for g in opt.param_groups)[0] == pytest.approx(0.005)


def test_schedule_state_round_trip_and_extension_report():
    old = LRSchedule.from_config({"type": "cosine", "warmup_iters": 5}, max_epochs=2, iters_per_epoch=10)
    again = LRSchedule.from_state(old.state_dict())
    assert all(again.factor(i) == old.factor(i) for i in range(25))
    assert old.compare(again, 0.1, 20) == []
    new = LRSchedule.from_config({"type": "cosine", "warmup_iters": 5}, max_epochs=4, iters_per_epoch=10)
    assert old.warmup_iters == again.warmup_iters == 4 and new.warmup_iters == 5  # cap: 0.2 x run
    lines = new.compare(old, 0.1, 20)
    assert "max_iters 20 -> 40" in lines[0]
    assert any("iter       20" in ln and "(ended)" in ln for ln in lines)
    assert math.isclose(new.factor(20), 0.5 * (1 + math.cos(math.pi * 15 / 35)), rel_tol=1e-9)


def test_yolo_warmup_bias_lr_momentum_and_epochs():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 2, 1))
    opt = build_optimizer(model, {"type": "SGD", "lr": 0.01, "momentum": 0.937, "base_batch_size": None})
    biases = [g for g in opt.param_groups if g["bias"]]
    assert biases and all(n.endswith("bias") for g in biases for n in g["param_names"])
    sched = LRSchedule(
        type="linear",
        max_iters=100,
        iters_per_epoch=10,
        warmup_epochs=2,
        warmup_ratio=0.0,
        warmup_bias_lr=0.1,
        warmup_momentum=0.8,
        min_lr_ratio=0.01,
    )
    assert sched.warmup_iters == 20
    sched.apply(opt, 0)
    weights = [g for g in opt.param_groups if not g["bias"]]
    assert biases[0]["lr"] == pytest.approx(0.1) and weights[0]["lr"] == pytest.approx(0.0)
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.8)
    sched.apply(opt, 10)  # half-way: biases between 0.1 and the scheduled lr, momentum half-way
    assert biases[0]["lr"] == pytest.approx(0.5 * 0.1 + 0.5 * 0.01 * sched.main_factor(10))
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.8685)
    lr = sched.apply(opt, 20)  # after the warm-up: every group on the schedule, momentum back to 0.937
    assert all(g["lr"] == pytest.approx(0.01 * sched.factor(20)) for g in opt.param_groups)
    assert lr == pytest.approx(0.01 * sched.factor(20)) and opt.param_groups[0]["momentum"] == pytest.approx(0.937)
    again = LRSchedule.from_state(sched.state_dict())
    assert again.state_dict() == sched.state_dict()


def test_unused_type_keys_write_values_as_yaml():
    """The values in the message read back as numbers when pasted into a config (1.0e-06, not 1e-06)."""
    found = dict(unused_type_keys({"optimizer": {"type": "SGD", "eps": 1e-6, "betas": [0.9, 0.99]}}))
    assert found[("optimizer", "eps")].startswith("optimizer.eps: 1.0e-06 is not used by optimizer type SGD")
    assert "(or set it to 1.0e-08)" in found[("optimizer", "eps")]
    assert "optimizer.betas: [0.9, 0.99] is not used" in found[("optimizer", "betas")]
    assert "(or set it to [0.9, 0.999])" in found[("optimizer", "betas")]
