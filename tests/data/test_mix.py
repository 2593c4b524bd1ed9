"""MixDataset (mosaic / mixup / post-mix pipeline): contract, box-mask alignment, seeding, close_mosaic, loaders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detkit.data.build import SeededDataset, build_dataloader, build_dataset, set_loader_epoch
from detkit.data.datasets.mix import MixDataset
from detkit.data.synthetic import make_shapes
from detkit.data.transforms.geometric import LetterBox
from detkit.data.transforms.mix_ops import pack_masks, unpack_masks

COLORS = np.array([(220, 30, 30), (30, 220, 30), (30, 30, 220), (220, 220, 30)], np.uint8)  # per label
POST = [
    {
        "type": "Affine",
        "scale": [0.5, 1.5],
        "translate_percent": [-0.1, 0.1],
        "keep_ratio": True,
        "fill": 114,
        "p": 1.0,
    },
    {"type": "HorizontalFlip", "p": 0.5},
]


class _Objects(torch.utils.data.Dataset):
    """``num`` 64x48 images: grey background ``60 + 5 i``; two squares coloured by label; masks + sem_seg."""

    class_names = ["a", "b", "c", "d"]
    label_to_cat_id = {0: 1, 1: 2, 2: 3, 3: 4}

    def __init__(self, num: int = 12):
        self.num = num
        self.aspect_ratios = [48 / 64] * num

    def __len__(self) -> int:
        return self.num

    def __getitem__(self, i: int) -> dict:
        h, w = 48, 64
        img = np.full((h, w, 3), 60 + 5 * i, np.uint8)
        labels = np.array([i % 4, (i + 1) % 4], np.int64)
        x0, y0 = 4 + (3 * i) % 20, 6 + (2 * i) % 10
        boxes = np.array([[x0, y0, x0 + 18, y0 + 16], [40, 24, 60, 44]], np.float32)
        masks = np.zeros((2, h, w), np.uint8)
        sem = np.full((h, w), 255, np.uint8)
        for k, (b, lab) in enumerate(zip(boxes.astype(int), labels)):
            masks[k, b[1] : b[3], b[0] : b[2]] = 1
            img[b[1] : b[3], b[0] : b[2]] = COLORS[lab]
            sem[b[1] : b[3], b[0] : b[2]] = lab
        return {
            "image": img,
            "boxes": boxes,
            "labels": labels,
            "masks": masks,
            "sem_seg": sem,
            "image_id": 100 + i,
            "orig_size": (h, w),
            "scale_factor": (1.0, 1.0),
            "pad_offset": (0, 0),
        }


def mask_box(m: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(m)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def check_contract(s: dict, size: int, num_classes: int = 4) -> None:
    assert s["image"].shape == (size, size, 3) and s["image"].dtype == np.uint8
    n = len(s["labels"])
    assert s["boxes"].shape == (n, 4) and s["boxes"].dtype == np.float32
    assert s["labels"].dtype == np.int64 and ((s["labels"] >= 0) & (s["labels"] < num_classes)).all()
    assert s["masks"].shape == (n, size, size) and s["masks"].dtype == np.uint8
    b = s["boxes"]
    assert (b >= 0).all() and (b <= size).all() and (b[:, 2] - b[:, 0] > 2).all() and (b[:, 3] - b[:, 1] > 2).all()
    assert s["scale_factor"] == (1.0, 1.0) and s["pad_offset"] == (0, 0)
    assert isinstance(s["image_id"], int) and len(s["orig_size"]) == 2


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> dict:
    return make_shapes(tmp_path_factory.mktemp("shapes"), num_train=8, num_val=1, size=(64, 64))


def shapes_cfg(shapes: dict, flat: bool = False, **kw) -> dict:
    """A MixDataset config; ``flat`` gives ann_file / img_dir at the top level (``data.train.ann_file``)."""
    paths = {"ann_file": str(shapes["train_ann_file"]), "img_dir": str(shapes["train_img_dir"])}
    inner = {"type": "CocoDataset", "with_masks": True, **({} if flat else paths)}
    return {"type": "MixDataset", "dataset": inner, "size": 96, "pipeline": POST, **(paths if flat else {}), **kw}


def test_pack_unpack_masks_roundtrip():
    rng = np.random.default_rng(0)
    masks = (rng.random((19, 5, 7)) > 0.5).astype(np.uint8)
    sem = rng.integers(0, 4, (5, 7)).astype(np.uint8)
    packed = pack_masks(masks[3:], 1, 4, sem) | pack_masks(masks[:3], 0, 4)  # item 2 starts at channel 1
    assert packed.shape == (5, 7, 5)
    np.testing.assert_array_equal(packed[..., 0], sem + 1)
    np.testing.assert_array_equal(unpack_masks(packed, np.arange(3)), masks[:3])
    np.testing.assert_array_equal(unpack_masks(packed, 8 + np.arange(16)), masks[3:])
    np.testing.assert_array_equal(unpack_masks(packed, np.array([8 + 14, 2])), masks[[17, 2]])


def test_shapes_contract_and_boxes_follow_masks(shapes):
    ds = build_dataset(shapes_cfg(shapes, mixup={"p": 0.5}))
    assert isinstance(ds, MixDataset)
    assert ds.class_names == ["circle", "rectangle", "triangle", "star"] and ds.label_to_cat_id[0] == 1
    assert ds.cat_ids == [1, 2, 3, 4] and ds.with_masks and ds.coco is ds.dataset.coco
    np.testing.assert_array_equal(ds.aspect_ratios, np.ones(len(ds)))
    seeded, total = SeededDataset(ds, seed=3), 0
    for i in range(len(ds)):
        s = seeded[(i, 0)]
        check_contract(s, 96)
        total += len(s["boxes"])
        for b, m in zip(s["boxes"], s["masks"]):
            assert np.abs(b - mask_box(m)).max() <= 2.0, (b, mask_box(m))
    assert total > len(ds)  # mosaics hold several images' objects


def test_labels_and_masks_stay_with_their_objects():
    """Mosaic only: every box's mask covers pixels of its label's colour, and sem_seg agrees."""
    ds = MixDataset(_Objects(), size=96, mosaic={"p": 1.0, "center_range": [0.3, 0.7]})
    sources = objects = 0
    for i in range(len(ds)):
        ds.pipeline.seed((0, 0, i))
        s = ds[i]
        check_contract(s, 96)
        assert s["sem_seg"].shape == (96, 96)
        objects += len(s["labels"])
        for lab, b, m in zip(s["labels"], s["boxes"], s["masks"]):
            assert np.abs(b - mask_box(m)).max() <= 1.0
            inside = m.astype(bool)
            np.testing.assert_allclose(np.median(s["image"][inside], axis=0), COLORS[lab], atol=30)
            assert np.median(s["sem_seg"][inside]) == lab
        greys = {
            int(v)
            for v in np.unique(s["image"][..., 0])
            if (s["image"][..., 0] == v).sum() > 50
            and v == s["image"][..., 1][s["image"][..., 0] == v][0]
            and 60 <= v < 120
        }
        sources += len(greys) >= 2
    assert sources >= len(ds) // 2  # most samples show several source images
    assert objects >= 2 * len(ds)  # as many objects as the primaries hold, at least


def test_same_key_same_bytes_other_epoch_differs(shapes):
    cfg = shapes_cfg(shapes, mixup={"p": 0.5})
    a, b = SeededDataset(build_dataset(cfg), 7), SeededDataset(build_dataset(cfg), 7)
    s1 = a[(2, 1)]
    a[(5, 0)], a[(2, 3)]  # other draws in between do not matter
    s2, s3 = a[(2, 1)], b[(2, 1)]
    for s in (s2, s3):
        assert s1["image"].tobytes() == s["image"].tobytes()
        np.testing.assert_array_equal(s1["boxes"], s["boxes"])
        np.testing.assert_array_equal(s1["labels"], s["labels"])
        np.testing.assert_array_equal(s1["masks"], s["masks"])
    assert a[(2, 2)]["image"].tobytes() != s1["image"].tobytes()
    assert SeededDataset(build_dataset(cfg), 8)[(2, 1)]["image"].tobytes() != s1["image"].tobytes()


def test_close_mosaic_switches_mosaic_and_mixup_off():
    inner = _Objects()
    ds = MixDataset(inner, size=96, mixup={"p": 1.0}, close_mosaic={"epochs": 2, "max_epochs": 5})
    assert [ds.mosaic_open(e) for e in range(5)] == [True, True, True, False, False]
    seeded = SeededDataset(ds, 0)
    expected = LetterBox(96)(inner[4])
    closed = seeded[(4, 3)]
    assert closed["image"].tobytes() == expected["image"].tobytes()
    np.testing.assert_array_equal(closed["labels"], inner[4]["labels"])
    np.testing.assert_allclose(closed["boxes"], expected["boxes"], atol=1.0)
    np.testing.assert_array_equal(closed["masks"], expected["masks"])  # the packed resize moves masks alike
    np.testing.assert_array_equal(closed["sem_seg"], expected["sem_seg"])
    assert seeded[(4, 2)]["image"].tobytes() != expected["image"].tobytes()
    later = MixDataset(inner, size=96, close_mosaic={"epochs": 2})  # max_epochs from the trainer
    assert later.mosaic_open(9)
    later.set_max_epochs(5)
    assert [later.mosaic_open(e) for e in range(5)] == [True, True, True, False, False]
    with pytest.raises(ValueError, match="'mosaic.prob'.*'p'"):
        MixDataset(inner, mosaic={"prob": 1.0})
    with pytest.raises(ValueError, match="size 96 and mosaic.size 64"):
        MixDataset(inner, size=96, mosaic={"size": 64})
    with pytest.raises(ValueError, match="ann_file is given twice"):
        MixDataset({"type": "CocoDataset", "ann_file": "a.json", "img_dir": "x"}, ann_file="b.json")


def test_mixup_blends_images_and_concatenates_labels():
    inner = _Objects()
    ds = MixDataset(inner, size=96, mosaic={"p": 0.0}, mixup={"p": 1.0})
    for i in range(4):
        ds.pipeline.seed((1, 0, i))
        s = ds[i]
        check_contract(s, 96)
        assert len(s["labels"]) == 4
        np.testing.assert_array_equal(s["labels"][:2], inner[i]["labels"])
        grey = lambda k: 60 + 5 * k  # noqa: E731  (the background of item k)
        corner = float(s["image"][50, 2, 0])  # background in both letterboxed images
        partners = [
            k
            for k in range(len(inner))
            if list(inner[k]["labels"]) == list(s["labels"][2:])
            and min(grey(i), grey(k)) - 1 <= corner <= max(grey(i), grey(k)) + 1
        ]
        assert partners, f"corner {corner} is no blend of item {i} and an item with labels {s['labels'][2:]}"
        # a blend with r ~ Beta(32, 32) lies well inside the two greys (or the partner is the image itself)
        assert any(k == i or 0.2 < (corner - grey(k)) / (grey(i) - grey(k)) < 0.8 for k in partners), corner


def test_loader_same_batches_with_0_and_2_workers(shapes):
    def batches(workers: int) -> list:
        train = shapes_cfg(shapes, flat=True, mixup={"p": 0.5})
        cfg = {"data": {"batch_size": 2, "num_workers": workers, "train": train}}
        loader = build_dataloader(cfg, "train", seed=5)
        set_loader_epoch(loader, 1)
        return [(b["images"], b["image_ids"], [t["labels"] for t in b["targets"]]) for b in loader]

    b0, b2 = batches(0), batches(2)
    assert len(b0) == 4 and b0[0][0].shape == (2, 3, 96, 96)
    for (i0, ids0, l0), (i2, ids2, l2) in zip(b0, b2):
        assert ids0 == ids2 and torch.equal(i0, i2)
        assert all(torch.equal(x, y) for x, y in zip(l0, l2))
