"""build_dataset / build_dataloader with a tiny fake dataset (no files, no CocoDataset needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detkit.data.build import SeededDataset, build_dataloader, build_dataset, set_loader_epoch
from detkit.data.samplers import GroupedBatchSampler
from detkit.data.transforms import Pipeline
from detkit.registry import DATASETS


class _BuildTestDataset(torch.utils.data.Dataset):
    """``num`` tiny images; even items landscape 40x60, odd items portrait 60x40; ``bad`` items decode to None."""

    def __init__(self, num: int = 10, pipeline=None, bad=()):
        self.num, self.pipeline, self.bad = num, pipeline, set(bad)
        self.aspect_ratios = [40 / 60 if i % 2 == 0 else 60 / 40 for i in range(num)]

    def __len__(self):
        return self.num

    def __getitem__(self, i):
        if i in self.bad:
            return None
        h, w = (40, 60) if i % 2 == 0 else (60, 40)
        img = np.full((h, w, 3), i, np.uint8)
        img[: h // 2, : w // 3] = 200  # asymmetric, so a flip is visible
        s = {
            "image": img,
            "boxes": np.array([[2, 3, 20, 30]], np.float32),
            "labels": np.array([i % 3]),
            "image_id": 1000 + i,
            "orig_size": (h, w),
            "scale_factor": (1.0, 1.0),
            "pad_offset": (0, 0),
        }
        return self.pipeline(s) if self.pipeline is not None else s


if "_BuildTestDataset" not in DATASETS:
    DATASETS.register(_BuildTestDataset)

PIPE = [
    {"type": "ResizeShortestEdge", "short_sizes": [32, 48, 64], "max_size": 200},
    {"type": "HorizontalFlip", "p": 0.5},
]


def cfg(num=10, workers=0, bs=2, **extra):
    return {
        "data": {
            "batch_size": bs,
            "num_workers": workers,
            **extra,
            "train": {"type": "_BuildTestDataset", "num": num, "pipeline": PIPE},
            "val": {"type": "_BuildTestDataset", "num": num},
        }
    }


def ids(loader):
    return [b["image_ids"] for b in loader]


def test_build_dataset_builds_the_pipeline():
    ds = build_dataset(cfg()["data"]["train"])
    assert isinstance(ds, _BuildTestDataset) and isinstance(ds.pipeline, Pipeline) and len(ds.pipeline) == 2
    with pytest.raises(KeyError, match="_BuildTestDatase"):
        build_dataset({"type": "_BuildTestDatase"})


def test_train_loader_batches_grouped_and_deterministic():
    c = cfg(num=11)
    loader = build_dataloader(c, "train", seed=3)
    assert isinstance(loader.batch_sampler, GroupedBatchSampler)
    first = ids(loader)
    assert len(first) == len(loader) == 6  # 6 landscape -> 3 batches, 5 portrait -> 3 (padded)
    for b in first:
        assert len({(i - 1000) % 2 for i in b}) == 1
    batch = next(iter(loader))
    assert batch["images"].dtype == torch.uint8 and batch["images"].shape[0] == 2
    assert batch["images"].shape[-1] % 32 == 0 and batch["images"].shape[-2] % 32 == 0
    assert ids(build_dataloader(c, "train", seed=3)) == first
    set_loader_epoch(loader, 1)
    assert ids(loader) != first


def test_start_iter_resumes_mid_epoch():
    c = cfg(num=12)
    loader = build_dataloader(c, "train", seed=1)
    set_loader_epoch(loader, 2)
    full = ids(loader)
    resumed = build_dataloader(c, "train", seed=1, start_iter=2)
    set_loader_epoch(resumed, 2)
    assert ids(resumed) == full[2:]


def test_val_loader_sequential_with_val_batch_size_and_skips():
    c = cfg(num=7, val_batch_size=3)
    ds = _BuildTestDataset(num=7, bad={1})
    loader = build_dataloader(c, "val", dataset=ds)
    batches = list(loader)
    assert [b["image_ids"] for b in batches] == [[1000, 1002], [1003, 1004, 1005], [1006]]
    assert [b["num_skipped"] for b in batches] == [1, 0, 0]
    assert ids(build_dataloader(c, "test", dataset=ds)) == [b["image_ids"] for b in batches]


def test_all_bad_batch_is_none():
    loader = build_dataloader(cfg(num=2, bs=2), "val", dataset=_BuildTestDataset(num=2, bad={0, 1}))
    assert list(loader) == [None]


def test_workers_reproducible_augmentation():
    c = cfg(num=8, workers=2)

    def run():
        loader = build_dataloader(c, "train", seed=4)
        assert loader.persistent_workers and loader.num_workers == 2
        out = [
            (b["image_ids"], [tuple(t["boxes"][0].tolist()) for t in b["targets"]], tuple(b["images"].shape))
            for b in loader
        ]
        del loader
        return out

    a, b = run(), run()
    assert a == b
    boxes = [bx for _, bxs, _ in a for bx in bxs]
    assert len(set(boxes)) > 1  # random sizes / flips actually happen


def test_errors():
    with pytest.raises(ValueError, match="split"):
        build_dataloader(cfg(), "training")
    with pytest.raises(RuntimeError, match="torch.distributed"):
        build_dataloader(cfg(), "train", distributed=True)
    with pytest.raises(KeyError, match="data.test"):
        build_dataloader({"data": {"batch_size": 1, "train": cfg()["data"]["train"]}}, "test")


def _epoch_batches(loader, epoch):
    set_loader_epoch(loader, epoch)
    return [(b["image_ids"], b["images"]) for b in loader]


def _assert_same_batches(a, b):
    assert [ids for ids, _ in a] == [ids for ids, _ in b]
    for (_, x), (_, y) in zip(a, b):
        assert torch.equal(x, y)


def test_augmentation_is_a_function_of_seed_epoch_and_index():
    """Random augmentations do not depend on the workers, on a resume, or on what ran before."""
    c0, c2 = cfg(num=8, workers=0), cfg(num=8, workers=2)
    ref = {e: _epoch_batches(build_dataloader(c0, "train", seed=4), e) for e in (0, 1)}
    persistent = build_dataloader(c2, "train", seed=4)  # one set of workers for both epochs
    for e in (0, 1):
        _assert_same_batches(_epoch_batches(persistent, e), ref[e])
    resumed = build_dataloader(c2, "train", seed=4, start_iter=2)
    _assert_same_batches(_epoch_batches(resumed, 1), ref[1][2:])
    # the same image gets other augmentations in another epoch
    by_id = {e: {i: img for ids, imgs in ref[e] for i, img in zip(ids, imgs)} for e in (0, 1)}
    assert any(not torch.equal(by_id[0][i], by_id[1][i]) for i in by_id[0])


def test_seeded_dataset_items_do_not_depend_on_call_order():
    ds = SeededDataset(build_dataset(cfg()["data"]["train"]), seed=7)
    first = ds[(3, 2)]["image"]
    for key in [(5, 2), (3, 1), (0, 0)]:
        ds[key]
    assert np.array_equal(ds[(3, 2)]["image"], first)
    other = SeededDataset(ds.dataset, seed=8)  # another base seed, other augmentations
    assert any(not np.array_equal(ds[(i, 2)]["image"], other[(i, 2)]["image"]) for i in range(10))
    assert ds[3]["image_id"] == 1003 and len(ds) == 10  # a plain index passes through


def test_batches_are_pinned_for_a_gpu_run_only(monkeypatch):
    """A CPU run on a GPU machine must not pin (the pinning thread makes a CUDA context on the current GPU)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert build_dataloader(cfg(), "train").pin_memory  # default: whenever CUDA is available
    assert not build_dataloader(cfg(), "train", pin_memory=False).pin_memory
    assert not build_dataloader(cfg(), "val", pin_memory=False).pin_memory
    from detkit.engine.parts import build_data

    c = cfg()
    c["data"].pop("val")  # the trainer's data without an evaluator (the fake dataset has no annotations)
    c["seed"] = 0
    assert not build_data(c, torch.device("cpu")).train_loader.pin_memory
    assert build_data(c, torch.device("cuda")).train_loader.pin_memory
