"""Segmentation transforms: RandomCropCatMax, PadToSize, and sem_seg moving nearest through detkit's transforms."""

import numpy as np
import pytest

from detkit.data.transforms import build_transforms
from detkit.data.transforms.segmentation import PadToSize, RandomCropCatMax


def _sample(h=60, w=80, seed=0):
    rng = np.random.default_rng(seed)
    sem = np.zeros((h, w), np.uint8)
    sem[10:30, 20:50] = 1
    sem[35:55, 5:25] = 2
    sem[0:4, :] = 255
    return {
        "image": rng.integers(0, 255, (h, w, 3), dtype=np.uint8),
        "sem_seg": sem,
        "boxes": np.array([[20, 10, 50, 30], [5, 35, 25, 55]], np.float32),
        "labels": np.array([0, 1]),
        "masks": np.stack([sem == 1, sem == 2]).astype(np.uint8),
        "image_id": 0,
        "orig_size": (h, w),
        "scale_factor": (1.0, 1.0),
        "pad_offset": (0, 0),
    }


def test_crop_moves_image_sem_boxes_and_masks_together():
    s = _sample()
    t = RandomCropCatMax(crop_size=(32, 40), cat_max_ratio=1.0)
    t.rng = np.random.default_rng(3)
    out = t(s)
    assert out["image"].shape == (32, 40, 3) and out["sem_seg"].shape == (32, 40)
    # recover the offset from the image and check every array used the same one
    for y0 in range(60 - 32 + 1):
        for x0 in range(80 - 40 + 1):
            if np.array_equal(s["image"][y0 : y0 + 32, x0 : x0 + 40], out["image"]):
                break
        else:
            continue
        break
    assert np.array_equal(out["sem_seg"], s["sem_seg"][y0 : y0 + 32, x0 : x0 + 40])
    for box, m in zip(out["boxes"], out["masks"]):
        ys, xs = np.nonzero(m)
        assert np.allclose(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    assert s["sem_seg"].shape == (60, 80)  # input untouched


def test_cat_max_ratio_caps_the_largest_class():
    sem = np.zeros((100, 100), np.uint8)
    sem[60:, 60:] = 1  # one object in a corner: most crops are (almost) pure background
    s = {"image": np.zeros((100, 100, 3), np.uint8), "sem_seg": sem}
    plain, capped = RandomCropCatMax(40, cat_max_ratio=1.0), RandomCropCatMax(40, cat_max_ratio=0.9, max_tries=50)
    plain.rng, capped.rng = np.random.default_rng(0), np.random.default_rng(0)
    share = lambda c: np.bincount(c.ravel(), minlength=2).max() / c.size  # noqa: E731
    plain_shares = [share(plain(s)["sem_seg"]) for _ in range(30)]
    capped_shares = [share(capped(s)["sem_seg"]) for _ in range(30)]
    assert np.mean([v >= 0.9 for v in plain_shares]) > 0.5
    assert all(v < 0.9 for v in capped_shares)


def test_small_images_pad_with_ignore():
    s = _sample(h=20, w=30)
    out = RandomCropCatMax(crop_size=32)(s)
    assert out["image"].shape == (32, 32, 3)
    assert (out["sem_seg"][20:] == 255).all() and (out["sem_seg"][:, 30:] == 255).all()
    assert np.array_equal(out["sem_seg"][:20, :30], s["sem_seg"])
    p = PadToSize(size=(24, 40), pad_value=7)(s)
    assert p["image"].shape == (24, 40, 3) and (p["image"][20:] == 7).all()
    assert (p["sem_seg"][:, 30:] == 255).all() and p["pad_offset"] == (0, 0)


@pytest.mark.parametrize(
    "spec",
    [
        [{"type": "ResizeShortestEdge", "short_sizes": [97], "max_size": None}],
        [{"type": "LetterBox", "size": [64, 64]}],
        [{"type": "RandomCropCatMax", "crop_size": [33, 45]}],
        [{"type": "Affine", "scale": [0.7, 1.3], "rotate": [-20, 20], "p": 1.0}],
        [{"type": "RandomScale", "scale_limit": 0.4, "p": 1.0}],
    ],
)
def test_sem_seg_moves_nearest_and_fills_with_ignore(spec):
    s = _sample()
    pipe = build_transforms(spec)
    pipe.seed(0)
    out = pipe(s)
    assert out["sem_seg"].shape == out["image"].shape[:2]
    assert set(np.unique(out["sem_seg"])) <= {0, 1, 2, 255}  # no blended label values


def test_flip_moves_sem_seg_with_the_image():
    s = _sample()
    out = build_transforms([{"type": "HorizontalFlip", "p": 1.0}])(s)
    assert np.array_equal(out["image"], s["image"][:, ::-1]) and np.array_equal(out["sem_seg"], s["sem_seg"][:, ::-1])


def test_crop_is_seeded_by_the_pipeline():
    spec = [{"type": "RandomCropCatMax", "crop_size": 24, "cat_max_ratio": 0.75}]
    a, b = build_transforms(spec), build_transforms(spec)
    a.seed((0, 1, 2))
    b.seed((0, 1, 2))
    assert np.array_equal(a(_sample())["sem_seg"], b(_sample())["sem_seg"])
