"""collate builds the contract batch: padded uint8 images, torch targets, skipped samples counted."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detkit.data.collate import collate


def sample(h: int, w: int, n: int, image_id: int, masks: bool = True, sem: bool = False) -> dict:
    rng = np.random.default_rng(image_id)
    s = {
        "image": rng.integers(1, 255, (h, w, 3), dtype=np.uint8),
        "boxes": np.tile(np.array([[1, 2, 10, 12]], np.float32), (n, 1)),
        "labels": np.arange(n, dtype=np.int64),
        "image_id": image_id,
        "orig_size": (2 * h, 2 * w),
        "scale_factor": (0.5, 0.5),
        "pad_offset": (0, 0),
    }
    if masks:
        s["masks"] = rng.integers(0, 2, (n, h, w), dtype=np.uint8)
    if sem:
        s["sem_seg"] = rng.integers(0, 5, (h, w), dtype=np.uint8)
    return s


def test_shapes_dtypes_and_padding():
    a, b = sample(50, 70, 2, 1, sem=True), sample(64, 33, 0, 2, sem=True)
    batch = collate([a, b])
    imgs = batch["images"]
    assert imgs.dtype == torch.uint8 and imgs.shape == (2, 3, 64, 96)
    assert torch.equal(imgs[0, :, :50, :70], torch.from_numpy(a["image"]).permute(2, 0, 1))
    assert imgs[0, :, 50:].sum() == 0 and imgs[0, :, :, 70:].sum() == 0
    assert torch.equal(imgs[1, :, :64, :33], torch.from_numpy(b["image"]).permute(2, 0, 1))
    assert imgs[1, :, :, 33:].sum() == 0
    assert batch["image_sizes"] == [(50, 70), (64, 33)]
    assert batch["orig_sizes"] == [(100, 140), (128, 66)]
    assert batch["image_ids"] == [1, 2] and batch["num_skipped"] == 0
    assert batch["scale_factors"] == [(0.5, 0.5)] * 2 and batch["pad_offsets"] == [(0.0, 0.0)] * 2
    t0, t1 = batch["targets"]
    assert t0["boxes"].dtype == torch.float32 and t0["boxes"].shape == (2, 4)
    assert t0["labels"].dtype == torch.int64 and t0["labels"].tolist() == [0, 1]
    assert t0["masks"].dtype == torch.uint8 and t0["masks"].shape == (2, 50, 70)  # unpadded
    assert t1["boxes"].shape == (0, 4) and t1["labels"].shape == (0,) and t1["masks"].shape == (0, 64, 33)
    sem = t0["sem_seg"]
    assert sem.dtype == torch.int64 and sem.shape == (64, 96)
    assert torch.equal(sem[:50, :70], torch.from_numpy(a["sem_seg"]).long())
    assert (sem[50:] == 255).all() and (sem[:, 70:] == 255).all()


def test_targets_share_memory_with_numpy():
    s = sample(32, 32, 3, 1)
    t = collate([s])["targets"][0]
    s["boxes"][0, 0] = 123.0
    s["masks"][0, 0, 0] = 7
    assert t["boxes"][0, 0] == 123.0 and t["masks"][0, 0, 0] == 7  # torch.from_numpy, no copy


def test_bool_masks_and_converted_dtypes():
    s = sample(20, 20, 2, 1)
    s["masks"] = s["masks"].astype(bool)
    s["boxes"] = s["boxes"].astype(np.float64)
    s["labels"] = s["labels"].astype(np.int32)
    t = collate([s])["targets"][0]
    assert t["masks"].dtype == torch.uint8 and t["boxes"].dtype == torch.float32
    assert t["labels"].dtype == torch.int64


def test_none_samples_dropped_and_counted():
    batch = collate([None, sample(40, 40, 1, 3), None])
    assert batch["num_skipped"] == 2 and batch["images"].shape == (1, 3, 64, 64)
    assert batch["image_ids"] == [3]
    assert collate([None, None]) is None


@pytest.mark.parametrize("div,expected", [(1, (45, 61)), (0, (45, 61)), (16, (48, 64)), (32, (64, 64))])
def test_size_divisor(div, expected):
    batch = collate([sample(45, 20, 0, 1), sample(10, 61, 0, 2)], size_divisor=div)
    assert tuple(batch["images"].shape[-2:]) == expected


def test_rejects_non_rgb_uint8():
    s = sample(10, 10, 0, 1)
    s["image"] = s["image"][:, :, 0]
    with pytest.raises(ValueError, match="uint8"):
        collate([s])
