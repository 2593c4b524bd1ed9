"""Tests of the synthetic shapes dataset (detkit.data.synthetic)."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from detkit.data import synthetic
from detkit.data.synthetic import CLASSES, SEM_CLASSES, _background, make_shapes, render_image

SIZE = (128, 112)  # H, W: not square, to catch swapped axes


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    return make_shapes(root / "a", num_train=16, num_val=8, seed=3, size=SIZE)


def _all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _coco(path) -> COCO:
    return COCO(str(path))


def test_layout_and_class_files(shapes):
    root = shapes["root"]
    for key, p in shapes.items():
        assert Path(p).exists(), key
    assert len(list((root / "train").glob("*.png"))) == 16
    assert len(list((root / "val").glob("*.png"))) == 8
    assert len(list((root / "sem" / "train").glob("*.png"))) == 16
    assert (root / "classes.txt").read_text().split() == list(CLASSES)
    assert (root / "sem" / "classes.txt").read_text().split() == ["background", *CLASSES]
    assert not list(root.rglob("*.tmp"))


def test_deterministic_bytes(shapes, tmp_path):
    again = make_shapes(tmp_path / "b", num_train=16, num_val=8, seed=3, size=SIZE)
    first, second = _all_files(shapes["root"]), _all_files(again["root"])
    assert first.keys() == second.keys()
    assert all(first[k] == second[k] for k in first)
    other = make_shapes(tmp_path / "c", num_train=2, num_val=1, seed=4, size=SIZE)
    assert (other["train_img_dir"] / "000001.png").read_bytes() != first["train/000001.png"]


@pytest.mark.parametrize("split", ["train", "val"])
def test_coco_json_loads_and_is_consistent(shapes, split):
    coco = _coco(shapes[f"{split}_ann_file"])
    assert sorted(coco.getCatIds()) == [1, 2, 3, 4]  # COCO-like ids, not 0-based
    assert [c["name"] for c in coco.loadCats([1, 2, 3, 4])] == list(CLASSES)
    h, w = SIZE
    for img in coco.dataset["images"]:
        assert (img["height"], img["width"]) == (h, w)
        stored = cv2.imread(str(shapes[f"{split}_img_dir"] / img["file_name"]), cv2.IMREAD_UNCHANGED)
        assert stored.shape == (h, w, 3) and stored.dtype == np.uint8
    for ann in coco.dataset["annotations"]:
        m = coco.annToMask(ann)
        ys, xs = np.nonzero(m)
        # bbox is the tight box of the rasterised polygon; area its pixel count
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
        assert ann["area"] == m.sum() >= 16
        assert ann["iscrowd"] == 0 and len(ann["segmentation"]) == 1
        poly = np.asarray(ann["segmentation"][0]).reshape(-1, 2)
        assert (poly >= 0).all() and (poly[:, 0] <= w).all() and (poly[:, 1] <= h).all()
        assert max(ann["bbox"][2:]) >= 9  # ~12 px objects, rotated
        assert max(ann["bbox"][2:]) <= 0.45 * min(h, w) + 2


@pytest.mark.parametrize("split", ["train", "val"])
def test_semantic_maps_equal_instance_polygons(shapes, split):
    """The written label map is the polygons painted in annotation order (later on top)."""
    coco = _coco(shapes[f"{split}_ann_file"])
    for img in coco.dataset["images"]:
        sem = cv2.imread(str(shapes[f"{split}_sem_dir"] / img["file_name"]), cv2.IMREAD_UNCHANGED)
        assert sem.dtype == np.uint8 and sem.shape == SIZE
        anns = sorted(coco.imgToAnns[img["id"]], key=lambda a: a["id"])
        expect = np.zeros(SIZE, np.uint8)
        masks = [coco.annToMask(a).astype(bool) for a in anns]
        for a, m in zip(anns, masks):
            expect[m] = a["category_id"]  # ids 1..4 == semantic index 1..4 (SEM_CLASSES order)
        np.testing.assert_array_equal(sem, expect)
        largest_first = np.zeros(SIZE, np.uint8)  # the COCO dataset's semantic rule gives the same map
        for k in np.argsort([-m.sum() for m in masks], kind="stable"):
            largest_first[masks[k]] = anns[k]["category_id"]
        np.testing.assert_array_equal(sem, largest_first)
        for k, m in enumerate(masks):
            visible = m & ~np.any(masks[k + 1 :], axis=0) if k + 1 < len(masks) else m
            assert visible.sum() >= 0.75 * m.sum() - 1e-6  # occlusion is limited
    assert SEM_CLASSES[0] == "background"


def test_split_statistics(shapes):
    for split, n in (("train", 16), ("val", 8)):
        stats = synthetic.dataset_stats(shapes[f"{split}_ann_file"])
        assert stats["empty_images"] == round(0.1 * n)
        assert sum(v > 0 for v in stats["per_class"].values()) >= 3, stats
        per_image = {}
        for a in json.loads(Path(shapes[f"{split}_ann_file"]).read_text())["annotations"]:
            per_image[a["image_id"]] = per_image.get(a["image_id"], 0) + 1
        assert max(per_image.values()) <= 6


def test_painted_pixels_match_polygon_masks():
    """Without noise, the pixels that differ from the background are exactly the shapes' masks."""
    h, w = 96, 80
    overlaps = 0
    for k in range(40):
        image, objects = render_image(np.random.default_rng(k), (h, w), noise_std=(0.0, 0.0))
        bg = _background(np.random.default_rng(k), h, w)  # render_image draws the background first
        painted = np.any(image != bg, axis=2)
        union = np.zeros((h, w), bool)
        for i, o in enumerate(objects):
            assert np.array_equal(o["mask"], synthetic.rasterize_polygon(o["polygon"], h, w))
            above = [p["mask"] for p in objects[i + 1 :]]
            top = o["mask"] & ~np.any(above, axis=0) if above else o["mask"]
            # every pixel where this shape is on top was painted (IoU of painted vs visible region > 0.9)
            assert (painted & top).sum() >= 0.98 * top.sum()
            assert top.sum() >= 0.75 * o["mask"].sum()
            overlaps += top.sum() < o["mask"].sum()
            union |= o["mask"]
        assert not (painted & ~union).any()  # nothing painted outside the shapes
        assert 1 <= len(objects) <= 6
    assert overlaps > 0  # partial occlusions do occur


def test_sizes_colours_and_backgrounds_vary():
    extents, kinds = [], set()
    for k in range(60):
        _, objects = render_image(np.random.default_rng(100 + k), (160, 160))
        for o in objects:
            ext = o["polygon"].max(0) - o["polygon"].min(0)
            extents.append(ext.max())
            kinds.add(o["kind"])
    extents = np.array(extents)
    assert kinds == set(CLASSES)
    assert extents.min() < 16 and extents.max() > 0.3 * 160
    bgs = [_background(np.random.default_rng(k), 64, 64).reshape(-1, 3).mean(0) for k in range(10)]
    assert np.std(bgs, axis=0).min() > 10


def test_interrupted_run_leaves_no_json(tmp_path, monkeypatch):
    paths = make_shapes(tmp_path, num_train=2, num_val=1, size=(48, 48))
    assert paths["train_ann_file"].exists()
    calls = {"n": 0}
    real = synthetic._write_png

    def failing(path, array):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        real(path, array)

    monkeypatch.setattr(synthetic, "_write_png", failing)
    with pytest.raises(KeyboardInterrupt):
        make_shapes(tmp_path, num_train=4, num_val=1, size=(48, 48))
    assert not paths["train_ann_file"].exists() and not paths["val_ann_file"].exists()


@pytest.mark.parametrize("kw", [dict(size=(16, 64)), dict(num_train=-1), dict(empty_fraction=1.5)])
def test_bad_arguments(tmp_path, kw):
    with pytest.raises(ValueError):
        make_shapes(tmp_path, **kw)


def test_class_weights_make_a_class_rare():
    """render_image(class_weights=...) draws shapes with those relative frequencies; the default draws are unchanged."""
    counts = np.zeros(len(CLASSES))
    for i in range(150):
        _, objects = render_image(np.random.default_rng([5, i]), (96, 96), class_weights=[1, 1, 1, 0.1])
        for o in objects:
            counts[o["label"]] += 1
    common = counts[:3].mean()
    assert counts[3] > 0 and 5 < common / counts[3] < 20  # about 10x rarer
    plain = [o["label"] for o in render_image(np.random.default_rng(1), (96, 96))[1]]
    uniform = [o["label"] for o in render_image(np.random.default_rng(1), (96, 96), class_weights=None)[1]]
    assert plain == uniform
    with pytest.raises(ValueError, match="class_weights must be 4 numbers"):
        render_image(np.random.default_rng(0), (96, 96), class_weights=[1, 1])


def test_train_class_weights_leave_val_balanced(tmp_path):
    a = make_shapes(tmp_path / "a", num_train=3, num_val=3, size=(64, 64))
    b = make_shapes(tmp_path / "b", num_train=3, num_val=3, size=(64, 64), train_class_weights=[0, 0, 0, 1])
    assert a["val_ann_file"].read_bytes() == b["val_ann_file"].read_bytes()
    labels = {ann["category_id"] for ann in json.loads(b["train_ann_file"].read_text())["annotations"]}
    assert labels == {synthetic.CATEGORY_IDS[3]}
