"""Transforms move image, boxes, masks and sem_seg together; resizes match torchvision."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from detkit.data.transforms import LetterBox, Pipeline, ResizeShortestEdge, build_transforms, resize_output_size

BOXES = np.array([[10, 8, 40, 30], [50, 40, 90, 70], [70, 5, 95, 25]], np.float32)
LABELS = np.array([2, 0, 1], np.int64)


def make_sample(
    h: int = 80,
    w: int = 100,
    boxes: np.ndarray = BOXES,
    labels: np.ndarray = LABELS,
    masks: bool = True,
    sem: bool = True,
) -> dict:
    """A sample whose masks are the filled boxes and whose sem_seg paints label+1 in each box (255 elsewhere)."""
    rng = np.random.default_rng(0)
    s = {
        "image": rng.integers(0, 255, (h, w, 3), dtype=np.uint8),
        "boxes": boxes.copy(),
        "labels": labels.copy(),
        "image_id": 7,
        "orig_size": (h, w),
        "scale_factor": (1.0, 1.0),
        "pad_offset": (0, 0),
    }
    if masks:
        m = np.zeros((len(boxes), h, w), np.uint8)
        for i, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
            m[i, y1:y2, x1:x2] = 1
        s["masks"] = m
    if sem:
        seg = np.full((h, w), 255, np.uint8)
        for (x1, y1, x2, y2), lab in zip(boxes.astype(int), labels):
            seg[y1:y2, x1:x2] = lab + 1
        s["sem_seg"] = seg
    return s


def mask_box(m: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(m)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def check_consistent(out: dict, tight: bool, tol: float = 1.5) -> None:
    """Every box bounds its mask (and equals the mask's extent when ``tight``); shapes agree."""
    h, w = out["image"].shape[:2]
    n = len(out["boxes"])
    assert out["boxes"].dtype == np.float32 and out["boxes"].shape == (n, 4)
    assert len(out["labels"]) == n and out["masks"].shape == (n, h, w)
    assert out["sem_seg"].shape == (h, w)
    assert (out["boxes"][:, 0::2] >= 0).all() and (out["boxes"][:, 0::2] <= w).all()
    assert (out["boxes"][:, 1::2] >= 0).all() and (out["boxes"][:, 1::2] <= h).all()
    for box, m in zip(out["boxes"], out["masks"]):
        mb = mask_box(m)
        assert mb[0] >= box[0] - tol and mb[1] >= box[1] - tol, (box, mb)
        assert mb[2] <= box[2] + tol and mb[3] <= box[3] + tol, (box, mb)
        if tight:
            np.testing.assert_allclose(mb, box, atol=tol)


PIPELINES = {
    "hflip": ([{"type": "HorizontalFlip", "p": 1.0}], True),
    "vflip+jitter": ([{"type": "VerticalFlip", "p": 1.0}, {"type": "ColorJitter", "p": 1.0}], True),
    "resize": ([{"type": "ResizeShortestEdge", "short_sizes": [120], "max_size": 1000}], True),
    "resize_down": ([{"type": "ResizeShortestEdge", "short_sizes": [37], "max_size": 1000}], True),
    "letterbox": ([{"type": "LetterBox", "size": [96, 160]}], True),
    "affine": ([{"type": "Affine", "rotate": [12, 12], "scale": [0.9, 0.9], "p": 1.0}], False),
    "mixed": (
        [
            {"type": "ResizeShortestEdge", "short_sizes": [64, 96]},
            {"type": "HorizontalFlip", "p": 1.0},
            {"type": "Affine", "translate_px": {"x": [5, 5], "y": [-3, -3]}, "p": 1.0},
            {"type": "LetterBox", "size": 128},
        ],
        True,
    ),
}


@pytest.mark.parametrize("name", list(PIPELINES))
def test_boxes_masks_sem_seg_move_together(name):
    specs, tight = PIPELINES[name]
    pipe = build_transforms(specs)
    pipe.seed(0)
    sample = make_sample()
    before = copy.deepcopy(sample)
    out = pipe(sample)
    check_consistent(out, tight)
    assert out["image_id"] == 7 and out["orig_size"] == (80, 100)
    # sem_seg: each object's pixels carry its class (nearest), never an interpolated value
    assert set(np.unique(out["sem_seg"])) <= {1, 2, 3, 255}
    if tight:
        for lab, m in zip(out["labels"], out["masks"]):
            inside = out["sem_seg"][m.astype(bool)]
            assert (inside == lab + 1).mean() > 0.9
    for k, v in before.items():  # inputs untouched
        np.testing.assert_array_equal(sample[k], v)


def test_hflip_exact_coordinates():
    out = build_transforms([{"type": "HorizontalFlip", "p": 1.0}])(make_sample())
    expected = BOXES.copy()
    expected[:, [0, 2]] = 100 - BOXES[:, [2, 0]]
    np.testing.assert_allclose(out["boxes"], expected, atol=1e-4)
    np.testing.assert_array_equal(out["masks"], make_sample()["masks"][:, :, ::-1])


def test_dropped_boxes_drop_their_masks():
    pipe = build_transforms([{"type": "Crop", "x_min": 0, "y_min": 0, "x_max": 60, "y_max": 50}])
    out = pipe(make_sample())
    # box 2 (x >= 70) lies outside the crop; box 1 is clipped to the crop
    np.testing.assert_array_equal(out["labels"], [2, 0])
    assert out["masks"].shape == (2, 50, 60)
    np.testing.assert_allclose(out["boxes"], [[10, 8, 40, 30], [50, 40, 60, 50]], atol=1e-4)
    check_consistent(out, tight=True)


def test_min_visibility_bbox_params_entry():
    specs = [
        {"type": "BboxParams", "min_visibility": 0.5},
        {"type": "Crop", "x_min": 0, "y_min": 0, "x_max": 60, "y_max": 50},
    ]
    out = build_transforms(specs)(make_sample())
    np.testing.assert_array_equal(out["labels"], [2])  # box 1 keeps 10x10 of 40x30: < 50 % visible
    assert out["masks"].shape == (1, 50, 60)


def test_degenerate_and_outside_boxes_are_clipped_or_dropped():
    boxes = np.array([[-5, -5, 20, 20], [30, 30, 30, 50], [95, 70, 130, 90]], np.float32)
    s = make_sample(boxes=boxes, labels=np.array([0, 1, 2]), sem=False)
    s["masks"] = np.zeros((3, 80, 100), np.uint8)
    out = build_transforms([{"type": "HorizontalFlip", "p": 1.0}])(s)
    np.testing.assert_array_equal(out["labels"], [0, 2])
    np.testing.assert_allclose(out["boxes"], [[80, 0, 100, 20], [0, 70, 5, 80]], atol=1e-4)
    assert out["masks"].shape == (2, 80, 100)


@pytest.mark.parametrize("name", list(PIPELINES))
@pytest.mark.parametrize("kind", ["empty_with_masks", "no_masks", "sem_only"])
def test_empty_targets(name, kind):
    s = make_sample(boxes=np.zeros((0, 4), np.float32), labels=np.zeros(0, np.int64))
    if kind == "no_masks":
        del s["masks"]
    if kind == "sem_only":
        s = make_sample()
        for k in ("boxes", "labels", "masks"):
            del s[k]
    out = build_transforms(PIPELINES[name][0])(s)
    h, w = out["image"].shape[:2]
    assert out["sem_seg"].shape == (h, w)
    if kind == "sem_only":
        assert "boxes" not in out and "masks" not in out
        assert set(np.unique(out["sem_seg"])) <= {1, 2, 3, 255}
    else:
        assert out["boxes"].shape == (0, 4) and out["labels"].shape == (0,)
        assert ("masks" in out) == (kind != "no_masks")
        if "masks" in out:
            assert out["masks"].shape == (0, h, w)


def test_sem_seg_fill_is_ignore():
    s = make_sample()
    s["sem_seg"][:] = 0  # class 0 everywhere
    out = build_transforms([{"type": "Affine", "translate_px": {"x": [20, 20], "y": [0, 0]}, "p": 1.0}])(s)
    assert (out["sem_seg"][:, :20] == 255).all() and (out["sem_seg"][:, 21:] == 0).all()
    lb = LetterBox(size=(120, 100))(make_sample())
    assert (lb["sem_seg"][:20] == 255).all() and (lb["masks"][:, :20] == 0).all()
    assert (lb["image"][:20] == 114).all()


@pytest.mark.parametrize(
    "hw", [(480, 640), (800, 1000), (333, 500), (1000, 300), (799, 1201), (50, 2000), (1333, 800), (123, 457)]
)
@pytest.mark.parametrize("min_size,max_size", [(800, 1333), (512, 853), (37, 100)])
def test_resize_matches_torchvision(hw, min_size, max_size):
    h, w = hw
    tv = GeneralizedRCNNTransform(min_size, max_size, [0.0] * 3, [1.0] * 3).eval()
    boxes = torch.tensor([[1.0, 2.0, w - 3.0, h - 1.0], [w / 3, h / 4, w / 2, h / 2]])
    img_t, tgt = tv.resize(torch.zeros(3, h, w), {"boxes": boxes.clone()})
    assert resize_output_size(h, w, min_size, max_size) == tuple(img_t.shape[-2:])
    s = {"image": np.zeros((h, w, 3), np.uint8), "boxes": boxes.numpy().copy(), "labels": np.zeros(2, np.int64)}
    out = ResizeShortestEdge(short_sizes=min_size, max_size=max_size)(s)
    assert out["image"].shape[:2] == tuple(img_t.shape[-2:])
    np.testing.assert_allclose(out["boxes"], tgt["boxes"].numpy(), rtol=1e-5, atol=1e-3)


def test_resize_scale_one_returns_image_unchanged():
    s = make_sample(h=80, w=100)
    out = ResizeShortestEdge(short_sizes=80, max_size=1000)(s)
    assert out is s  # torchvision computes scale 1.0: nothing to do
    out = ResizeShortestEdge(short_sizes=160, max_size=200)(s)  # long side caps: scale 2.0
    assert out["image"].shape[:2] == (160, 200) and out["scale_factor"] == (2.0, 2.0)


def test_resize_random_sizes_and_seeding():
    specs = [
        {"type": "ResizeShortestEdge", "short_sizes": [40, 60], "sample": "range", "max_size": None},
        {"type": "HorizontalFlip", "p": 0.5},
    ]
    a, b = build_transforms(specs), build_transforms(specs)
    a.seed(3)
    b.seed(3)
    outs_a = [a(make_sample()) for _ in range(12)]
    outs_b = [b(make_sample()) for _ in range(12)]
    shorts = {o["image"].shape[0] for o in outs_a}
    assert shorts <= set(range(40, 61)) and len(shorts) > 3
    for x, y in zip(outs_a, outs_b):
        np.testing.assert_array_equal(x["image"], y["image"])
        np.testing.assert_array_equal(x["boxes"], y["boxes"])
    flips = {bool(o["boxes"][0, 0] > o["image"].shape[1] / 2) for o in outs_a}
    assert flips == {True, False}


def test_letterbox_updates_scale_and_offset():
    out = LetterBox(size=(128, 128))(make_sample(h=80, w=100))
    assert out["image"].shape == (128, 128, 3)
    # 80 * 1.28 = 102.4 rows -> 102: the factor is the real per-axis ratio
    assert out["scale_factor"] == (1.28, 102 / 80) and out["pad_offset"] == (0.0, 13.0)
    small = LetterBox(size=(256, 256), scaleup=False)(make_sample(h=80, w=100))
    assert small["scale_factor"] == (1.0, 1.0) and small["pad_offset"] == (78.0, 88.0)


def test_unknown_names_and_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="HorizontalFlip"):
        build_transforms([{"type": "HorizontalFlp"}])
    with pytest.raises(ValueError, match="ResizeShortestEdge"):
        build_transforms([{"type": "ResizeShortestEdg"}])
    with pytest.raises(ValueError, match="no argument 'prob'"):
        build_transforms([{"type": "HorizontalFlip", "prob": 1.0}])
    with pytest.raises(ValueError, match="pipeline\\[0\\]"):
        build_transforms([{"type": "ResizeShortestEdge", "sizes": [3]}])
    with pytest.raises(ValueError, match="fixed"):
        build_transforms([{"type": "BboxParams", "format": "coco"}])


def test_albumentations_compositions_nest():
    pipe = build_transforms(
        [
            {
                "type": "OneOf",
                "p": 1.0,
                "transforms": [{"type": "HorizontalFlip", "p": 1.0}, {"type": "VerticalFlip", "p": 1.0}],
            }
        ]
    )
    assert isinstance(pipe, Pipeline) and len(pipe) == 1
    check_consistent(pipe(make_sample()), tight=True)


def test_seed_by_seed_epoch_index_and_independent_steps():
    """``seed((seed, epoch, index))`` replays a sample's augmentation; steps of one group draw independently."""
    pipe = build_transforms([{"type": "HorizontalFlip", "p": 0.5}, {"type": "ToGray", "p": 0.5}])
    img = np.zeros((8, 8, 3), np.uint8)
    img[:, :2] = (255, 0, 0)  # red on the left: a flip moves it, gray makes the channels equal
    sample = {"image": img, "boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64)}
    events = []
    for index in range(64):
        pipe.seed((0, 1, index))
        out = pipe(sample)["image"]
        pipe.seed((0, 1, index))
        np.testing.assert_array_equal(pipe(sample)["image"], out)
        col = out[0, -1] if out[0, -1].any() else out[0, 0]
        events.append((bool(out[0, -1].any()), bool(col[0] == col[1])))
    # every combination of (flipped, gray) occurs: the two steps do not share one random stream
    assert set(events) == {(False, False), (False, True), (True, False), (True, True)}
