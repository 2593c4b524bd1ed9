"""A distributed step as one process over the global batch: slot seeds, padding, loss normalisers, SyncBN.

The two-process checks run in 2 gloo processes started by ``torch.multiprocessing`` (a few seconds);
tests/engine/test_ddp_real.py trains the shipped configs end to end under torchrun.
"""

from __future__ import annotations

import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from detkit.data.collate import collate
from detkit.data.samplers import GroupedBatchSampler
from detkit.engine.runtime import draw_seeds, join_global_batch
from detkit.engine.sync_bn import SyncBatchNorm, convert_sync_batchnorm, use_sync_bn
from detkit.models.preprocess import Preprocessor
from detkit.ops.global_batch import global_mean_losses


def _sample(i: int, h: int, w: int) -> dict:
    return {
        "image": torch.full((h, w, 3), i, dtype=torch.uint8).numpy(),
        "boxes": torch.zeros(0, 4),
        "labels": torch.zeros(0, dtype=torch.int64),
        "image_id": i,
        "orig_size": (h, w),
    }


def test_slot_seeds_follow_the_global_batch_whatever_the_rank():
    """rank r x batch b numbers its images r*b + slot: the numbering of 1 process x batch N*b, skips included."""
    ratios = [0.75] * 10 + [1.25] * 6
    one = GroupedBatchSampler(ratios, 4, seed=3)
    ranks = [GroupedBatchSampler(ratios, 2, seed=3, num_replicas=2, rank=r) for r in (0, 1)]
    sizes = {i: (32 + 8 * (i % 3), 40) for i in range(16)}
    for it, (whole, *shares) in enumerate(zip(one.epoch_batches(0), *(s.epoch_batches(0) for s in ranks))):
        assert whole == shares[0] + shares[1]
        skipped = whole[1 + it % 3]  # one sample of each global batch fails to load (None)
        seeds = {}
        for rank, share in ((0, whole), *enumerate(shares)):
            samples = [None if i == skipped else _sample(i, *sizes[i]) for i in share]
            step = {"seed": 7, "iteration": it, "rank": rank, "batch_size": len(share), "world": 1}
            batch, missing = join_global_batch(collate(samples), step, torch.device("cpu"))
            assert not missing and batch["sync_loss_counts"] is False
            assert batch["batch_slots"] == [k for k, i in enumerate(share) if i != skipped]
            seeds.setdefault(len(share), []).extend(zip(batch["image_ids"], batch["draw_seeds"]))
        assert seeds[4] == seeds[2]  # each image gets the same seed in both layouts
        assert len({s for _, s in seeds[4]}) == 3  # and images differ
    assert draw_seeds(7, 0, [0]) != draw_seeds(7, 1, [0]) != draw_seeds(8, 0, [0])


def test_preprocess_pads_to_the_global_batch_size():
    pre = Preprocessor(size_divisor=32)
    images = torch.randint(0, 255, (2, 3, 40, 64), dtype=torch.uint8)
    out = pre({"images": images, "image_sizes": [(40, 60), (33, 64)], "pad_size": (70, 64)})
    assert out.shape == (2, 3, 96, 64)  # 70 rounded up to 32; never below the batch's own size
    assert torch.equal(out[:, :, :64], pre(images, [(40, 60), (33, 64)]))
    assert out[:, :, 64:].abs().sum() == 0 and out[0, :, :, 60:].abs().sum() == 0


class FrozenStatsNet(nn.Sequential):
    """A BatchNorm kept in eval mode by ``train()``, as a backbone's frozen stages are."""

    def train(self, mode: bool = True):
        super().train(mode)
        self[1].eval()
        return self


def test_use_sync_bn_auto_only_for_batch_statistics():
    bn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    gn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4))
    frozen = FrozenStatsNet(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    assert use_sync_bn("auto", bn, 2) and not use_sync_bn("auto", gn, 2) and not use_sync_bn("auto", frozen, 2)
    assert not use_sync_bn("auto", bn, 1) and not use_sync_bn(False, bn, 4) and use_sync_bn(True, gn, 2)
    synced = convert_sync_batchnorm(bn)
    assert isinstance(synced[1], SyncBatchNorm) and synced[1].weight is bn[1].weight
    x = torch.randn(2, 3, 8, 8)
    bn.eval(), synced.eval()
    assert torch.equal(synced(x), bn(x))  # evaluation: running statistics, no process group needed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out: dict) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        x = torch.randn(6, 3, 5, 5, dtype=torch.float64)  # the global batch; rank r holds 2 or 4 images
        share = x[:2] if rank == 0 else x[2:]
        bn = nn.BatchNorm2d(3).double()
        with torch.no_grad():
            bn.weight.uniform_(0.5, 1.5), bn.bias.uniform_(-1, 1)
        synced = convert_sync_batchnorm(bn).train()
        inp = share.clone().requires_grad_(True)
        y = synced(inp)
        # a mean over elements whose number differs between the ranks, made a global mean
        loss = (y * torch.arange(y.numel(), dtype=y.dtype).view_as(y).cos()).sum() / y.numel()
        loss = global_mean_losses({"l": loss}, {"l": y.numel()}, sync=True)["l"]
        loss.backward()
        grads = [inp.grad, synced.weight.grad, synced.bias.grad]
        for g in grads[1:]:
            dist.all_reduce(g)
            g /= 2  # DDP's average
        out[rank] = [y.detach(), *grads, synced.running_mean.clone(), synced.running_var.clone()]
    finally:
        dist.destroy_process_group()


def test_sync_bn_and_global_mean_match_one_process():
    """2 gloo processes holding 2 and 4 images: outputs, input and parameter gradients of 1 process x 6."""
    out = mp.Manager().dict()
    mp.spawn(_worker, args=(_free_port(), out), nprocs=2, join=True)
    torch.manual_seed(0)
    x = torch.randn(6, 3, 5, 5, dtype=torch.float64).requires_grad_(True)
    bn = nn.BatchNorm2d(3).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5), bn.bias.uniform_(-1, 1)
    y = bn(x)
    loss = (y * torch.cat([torch.arange(2 * 75), torch.arange(4 * 75)]).double().view_as(y).cos()).sum() / y.numel()
    loss.backward()
    a, b = out[0], out[1]
    torch.testing.assert_close(torch.cat([a[0], b[0]]), y.detach(), rtol=0, atol=1e-12)
    # an input's gradient on its rank is world x the global one (DDP averages the parameters' gradients)
    torch.testing.assert_close(torch.cat([a[1], b[1]]), 2 * x.grad, rtol=0, atol=1e-12)
    for k, ref in ((2, bn.weight.grad), (3, bn.bias.grad), (4, bn.running_mean), (5, bn.running_var)):
        torch.testing.assert_close(a[k], ref, rtol=0, atol=1e-12)
        torch.testing.assert_close(b[k], ref, rtol=0, atol=1e-12)
