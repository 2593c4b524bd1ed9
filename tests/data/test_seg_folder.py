"""SegFolderDataset: pairing, classes (list / file / background option), sample contract, clear errors."""

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from detkit.data.build import build_dataset
from detkit.data.collate import collate
from detkit.data.datasets.seg_folder import SegFolderDataset, read_label_map
from detkit.data.validate import DatasetError


def _write(root, n=3, size=(40, 56), classes=3, seed=0):
    rng = np.random.default_rng(seed)
    img_dir, mask_dir = root / "img", root / "ann"
    img_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    maps = []
    for i in range(n):
        img = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
        cv2.imwrite(str(img_dir / f"im{i}.jpg"), img)
        sem = rng.integers(0, classes, size).astype(np.uint8)
        sem[:3] = 255
        Image.fromarray(sem).save(mask_dir / f"im{i}.png")
        maps.append(sem)
    return img_dir, mask_dir, maps


def test_samples_follow_the_contract_and_collate(tmp_path):
    img_dir, mask_dir, maps = _write(tmp_path)
    ds = SegFolderDataset(img_dir, mask_dir, classes=["background", "cat", "dog"])
    assert len(ds) == 3 and ds.num_classes == 3 and ds.class_names == ["background", "cat", "dog"]
    s = ds[1]
    assert s["image"].dtype == np.uint8 and s["image"].shape == (40, 56, 3)
    assert s["sem_seg"].shape == (40, 56) and np.array_equal(s["sem_seg"], maps[1])
    assert s["boxes"].shape == (0, 4) and s["labels"].shape == (0,)
    assert s["image_id"] == 1 and s["orig_size"] == (40, 56)
    assert np.allclose(ds.aspect_ratios, 40 / 56)
    batch = collate([ds[0], ds[2]])
    assert batch["targets"][0]["sem_seg"].dtype == torch.int64
    assert batch["targets"][0]["sem_seg"].shape == (64, 64)  # padded to 32 with 255
    assert int(batch["targets"][0]["sem_seg"][50, 60]) == 255


def test_classes_from_a_file_and_the_background_option(tmp_path):
    img_dir, mask_dir, _ = _write(tmp_path)
    (tmp_path / "fg.txt").write_text("cat\ndog\n\n")  # (a blank line between names: test_seg_label_files.py)
    ds = SegFolderDataset(img_dir, mask_dir, classes=str(tmp_path / "fg.txt"), background="background")
    assert ds.class_names == ["background", "cat", "dog"]
    with pytest.raises(DatasetError, match="already start with 'background'"):
        SegFolderDataset(img_dir, mask_dir, classes=["background", "cat", "dog"], background="background")
    with pytest.raises(DatasetError, match="nope.txt not found"):
        SegFolderDataset(img_dir, mask_dir, classes=str(tmp_path / "nope.txt"))


def test_registered_and_built_with_a_pipeline(tmp_path):
    img_dir, mask_dir, _ = _write(tmp_path)
    ds = build_dataset(
        {
            "type": "SegFolderDataset",
            "img_dir": str(img_dir),
            "mask_dir": str(mask_dir),
            "classes": ["a", "b", "c"],
            "pipeline": [{"type": "RandomCropCatMax", "crop_size": 32}, {"type": "HorizontalFlip"}],
        }
    )
    s = ds[0]
    assert s["image"].shape == (32, 32, 3) and s["sem_seg"].shape == (32, 32)


def test_missing_mask_names_both_files(tmp_path):
    img_dir, mask_dir, _ = _write(tmp_path)
    (mask_dir / "im1.png").unlink()
    with pytest.raises(DatasetError, match=r"im1\.jpg has no .*ann/im1\.png"):
        SegFolderDataset(img_dir, mask_dir, classes=["a", "b", "c"])


def test_label_values_out_of_range_name_the_file_and_values(tmp_path):
    img_dir, mask_dir, _ = _write(tmp_path, classes=3)
    sem = np.zeros((40, 56), np.uint8)
    sem[5, 5], sem[6, 6], sem[7, 7] = 7, 9, 255
    Image.fromarray(sem).save(mask_dir / "im2.png")
    ds = SegFolderDataset(img_dir, mask_dir, classes=["a", "b", "c"])
    with pytest.raises(DatasetError, match=r"im2\.png has value\(s\) \[7, 9\] but there are 3 classes"):
        ds[2]
    ds[0]  # the others are fine


def test_empty_folder_and_missing_folders(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "ann").mkdir()
    with pytest.raises(DatasetError, match="holds no image"):
        SegFolderDataset(tmp_path / "img", tmp_path / "ann", classes=["a"])
    with pytest.raises(DatasetError, match="mask_dir .*nowhere is not a folder"):
        SegFolderDataset(tmp_path / "img", tmp_path / "nowhere", classes=["a"])


def test_size_mismatch_and_colour_label_maps_are_refused(tmp_path):
    img_dir, mask_dir, _ = _write(tmp_path)
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(mask_dir / "im0.png")
    Image.fromarray(np.zeros((40, 56, 3), np.uint8)).save(mask_dir / "im1.png")
    ds = SegFolderDataset(img_dir, mask_dir, classes=["a", "b", "c"])
    with pytest.raises(DatasetError, match=r"im0\.png is 20x20 but image .*im0\.jpg is 56x40"):
        ds[0]
    with pytest.raises(DatasetError, match=r"im1\.png is a colour \(RGB\) image"):
        ds[1]


def test_palette_pngs_give_indices(tmp_path):
    sem = np.array([[0, 1], [2, 255]], np.uint8)
    im = Image.fromarray(sem, mode="P")
    im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (3 * 252) + [224, 224, 192])
    im.save(tmp_path / "p.png")
    assert np.array_equal(read_label_map(tmp_path / "p.png"), sem)


def test_corrupt_image_is_skipped_or_raises(tmp_path):
    img_dir, mask_dir, _ = _write(tmp_path)
    (img_dir / "im0.jpg").write_bytes(b"not an image")
    with pytest.warns(UserWarning, match="im0.jpg"):
        assert SegFolderDataset(img_dir, mask_dir, classes=["a", "b", "c"])[0] is None
    with pytest.raises(OSError, match="im0.jpg"):
        SegFolderDataset(img_dir, mask_dir, classes=["a", "b", "c"], skip_bad_images=False)[0]


def test_shapes_folders_through_the_config_classes(tmp_path):
    from detkit.data.synthetic import make_shapes

    paths = make_shapes(tmp_path / "shapes", num_train=2, num_val=1, size=(64, 80))
    ds = SegFolderDataset(paths["train_img_dir"], paths["train_sem_dir"], classes=paths["sem_classes_file"])
    assert ds.class_names == ["background", "circle", "rectangle", "triangle", "star"]
    fg = SegFolderDataset(
        paths["train_img_dir"], paths["train_sem_dir"], classes=paths["classes_file"], background="background"
    )
    assert fg.class_names == ds.class_names
    assert ds[0]["sem_seg"].max() < 5


@pytest.mark.parametrize("suffix", ["_mask.png", "_gtFine_labelTrainIds.png"])
def test_a_mask_suffix_after_the_stem_pairs_the_files(tmp_path, suffix):
    img_dir, mask_dir, maps = _write(tmp_path)
    for i in range(3):  # a.jpg <-> a_mask.png (Kaggle, Cityscapes style)
        (mask_dir / f"im{i}.png").rename(mask_dir / f"im{i}{suffix}")
    ds = SegFolderDataset(img_dir, mask_dir, classes=["a", "b", "c"], mask_suffix=suffix)
    assert ds.masks == [str(mask_dir / f"im{i}{suffix}") for i in range(3)]
    assert np.array_equal(ds[1]["sem_seg"], maps[1])
    (mask_dir / f"im2{suffix}").unlink()
    with pytest.raises(DatasetError, match=rf"im2\.jpg has no .*ann/im2{suffix}"):
        SegFolderDataset(img_dir, mask_dir, classes=["a", "b", "c"], mask_suffix=suffix)


def test_a_bare_extension_replaces_the_image_ending_and_a_bad_suffix_is_named(tmp_path):
    img_dir, mask_dir, _ = _write(tmp_path)
    assert (
        SegFolderDataset(img_dir, mask_dir, classes=["a", "b", "c"], mask_suffix=".png")
        .masks[0]
        .endswith("ann/im0.png")
    )
    for bad in ("png", "_mask", "masks/_m.png", ""):
        with pytest.raises(DatasetError, match=rf"^mask_suffix '{bad}' is not a label-map file ending: give '\.png'"):
            SegFolderDataset(img_dir, mask_dir, classes=["a", "b", "c"], mask_suffix=bad)


def test_a_classes_file_with_a_byte_order_mark(tmp_path):
    img_dir, mask_dir, _ = _write(tmp_path)
    (tmp_path / "classes.txt").write_bytes("background\r\ncat\r\ndog\r\n".encode("utf-8-sig"))
    ds = SegFolderDataset(img_dir, mask_dir, classes=str(tmp_path / "classes.txt"))
    assert ds.class_names == ["background", "cat", "dog"]


def test_255_classes_fit_256_do_not(tmp_path):
    img_dir, mask_dir, _ = _write(tmp_path)
    names = [f"c{k}" for k in range(255)]  # labels 0..254
    assert SegFolderDataset(img_dir, mask_dir, classes=names).num_classes == 255
    with pytest.raises(DatasetError, match=r"^256 classes: label values are 0\.\.254 \(255 is the ignore value\), "
                       r"so at most 255 classes fit"):  # fmt: skip
        SegFolderDataset(img_dir, mask_dir, classes=names, background="background")


def test_label_map_and_reduce_zero_label_remap_the_values(tmp_path):
    img_dir, mask_dir, _ = _write(tmp_path, n=1)
    sem = np.array([[0, 1, 2, 255]] * 4, np.uint8)
    Image.fromarray(sem).save(mask_dir / "im0.png")
    cv2.imwrite(str(img_dir / "im0.jpg"), np.zeros((4, 4, 3), np.uint8))
    binary = SegFolderDataset(img_dir, mask_dir, classes=["bg", "a", "b"], label_map={255: 1, 2: 255})
    assert binary.read_label_map(0)[0].tolist() == [0, 1, 255, 1]
    reduced = SegFolderDataset(img_dir, mask_dir, classes=["a", "b"], reduce_zero_label=True)
    assert reduced[0]["sem_seg"][0].tolist() == [255, 0, 1, 255] and reduced[0]["sem_seg"].dtype == np.uint8
    both = SegFolderDataset(img_dir, mask_dir, classes=["a", "b"], reduce_zero_label=True, label_map={0: 1})
    assert both.read_label_map(0)[0].tolist() == [1, 0, 1, 255]  # label_map keys are the values in the files
    with pytest.raises(DatasetError) as e:
        SegFolderDataset(img_dir, mask_dir, classes=["bg", "a", "b"], label_map={255: 3})
    assert str(e.value) == (  # the key, and what an entry means
        "label_map (data.*.label_map) entry 255: 3 names class 3, but there are 3 classes; each entry is <value in "
        "the label-map files>: <the class it is read as, 0..2, or 255 to ignore it>, e.g. label_map: {255: 1} reads "
        "0/255 masks as classes 0 and 1 (give data.train and data.val the same)"
    )
    with pytest.raises(DatasetError, match=r"^label_map \(data.\*.label_map\) entry -1: 0 is no pair of whole"):
        SegFolderDataset(img_dir, mask_dir, classes=["bg", "a", "b"], label_map={-1: 0})
    with pytest.raises(DatasetError, match=r"^label_map \(data.\*.label_map\) \[255, 1\] is no mapping: each entry"):
        SegFolderDataset(img_dir, mask_dir, classes=["bg", "a", "b"], label_map=[255, 1])
