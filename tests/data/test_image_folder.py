"""ImageFolderDataset and CocoCropsDataset: layouts, classes, image reading, and each bad input a clear error."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

import detkit.data.datasets.coco_crops  # noqa: F401  (registers CocoCropsDataset)
from detkit.data.build import build_dataset
from detkit.data.collate import collate
from detkit.data.datasets.coco_crops import CocoCropsDataset, crop_window
from detkit.data.datasets.image_folder import ImageFolderDataset
from detkit.data.image_io import ImageReadError
from detkit.data.validate import DatasetError
from detkit.engine.preflight import check_categories

TRAIN_PIPELINE = [
    {"type": "RandomResizedCrop", "size": [24, 24], "scale": [0.5, 1.0]},
    {"type": "HorizontalFlip", "p": 0.5},
    {"type": "ColorJitter", "brightness": 0.3, "contrast": 0.3, "saturation": 0.3, "hue": 0.05, "p": 1.0},
]
TEST_PIPELINE = [{"type": "Resize", "height": 28, "width": 28}, {"type": "CenterCrop", "height": 24, "width": 24}]


def _png(path: Path, value: int = 100, shape=(20, 30, 3), dtype=np.uint8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full(shape, value, dtype=dtype))
    return path


def _folders(root: Path, counts: dict[str, int]) -> Path:
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            _png(root / name / f"{i}.png", 40 * i % 256)
    return root


def test_class_folders_give_sorted_classes_labels_and_samples(tmp_path):
    root = _folders(tmp_path / "train", {"dog": 2, "cat": 3, "emu": 1})
    _png(root / "dog" / "deeper" / "x.jpg")  # searched recursively
    (root / "cat" / "notes.txt").write_text("not an image")
    ds = ImageFolderDataset(root)
    assert ds.class_names == ["cat", "dog", "emu"] and ds.num_classes == 3
    assert ds.class_counts == [3, 3, 1] and len(ds) == 7
    s = ds[0]
    assert s["image"].dtype == np.uint8 and s["image"].shape == (20, 30, 3)
    assert s["labels"].dtype == np.int64 and s["labels"].tolist() == [0]
    assert s["image_id"] == 0 and s["orig_size"] == (20, 30) and "boxes" not in s
    assert ds[6]["labels"].tolist() == [2]


def test_grey_and_16_bit_images_are_read_as_the_coco_dataset_reads_them(tmp_path):
    _png(tmp_path / "a" / "grey.png", 77, shape=(10, 12))
    _png(tmp_path / "a" / "deep.png", 0x4A00, shape=(10, 12), dtype=np.uint16)
    ds = ImageFolderDataset(tmp_path)
    by_name = {Path(f).name: ds[i]["image"] for i, f in enumerate(ds.files)}
    assert by_name["grey.png"].shape == (10, 12, 3) and (by_name["grey.png"] == 77).all()
    assert (by_name["deep.png"] == 0x4A).all()  # 16-bit keeps its high byte


@pytest.mark.parametrize("pipeline", [TRAIN_PIPELINE, TEST_PIPELINE], ids=["train", "test"])
def test_albumentations_pipelines_keep_the_label_and_collate_gives_empty_boxes(tmp_path, pipeline):
    root = _folders(tmp_path, {"a": 2, "b": 2})
    ds = build_dataset({"type": "ImageFolderDataset", "img_dir": str(root), "pipeline": pipeline})
    samples = [ds[i] for i in range(len(ds))]
    assert all(s["image"].shape == (24, 24, 3) for s in samples)
    batch = collate(samples)
    assert [t["labels"].tolist() for t in batch["targets"]] == [[0], [0], [1], [1]]
    assert all(t["boxes"].shape == (0, 4) for t in batch["targets"])


def test_classes_from_a_list_a_text_file_or_the_training_folder(tmp_path):
    train = _folders(tmp_path / "train", {"a": 1, "b": 1, "c": 1})
    val = _folders(tmp_path / "val", {"a": 1, "c": 2})  # val lacks class b
    (tmp_path / "classes.txt").write_text("c\nb\na\n")
    assert ImageFolderDataset(val, classes=["a", "b", "c"]).class_counts == [1, 0, 2]
    assert ImageFolderDataset(val, classes=str(tmp_path / "classes.txt")).class_counts == [2, 0, 1]
    tr, va = ImageFolderDataset(train), ImageFolderDataset(val, classes=str(train))
    assert va.class_names == tr.class_names == ["a", "b", "c"]
    check_categories(tr, va)  # the trainer's pre-flight check agrees


def test_a_validation_class_that_training_lacks_is_named(tmp_path):
    train = _folders(tmp_path / "train", {"a": 1, "b": 1})
    val = _folders(tmp_path / "val", {"a": 1, "zebra": 1})
    with pytest.raises(DatasetError, match=r"val/zebra: class folder 'zebra' is not among the classes given"):
        ImageFolderDataset(val, classes=str(train))
    with pytest.warns(UserWarning, match="left out 1 item"):
        ds = ImageFolderDataset(val, classes=str(train), on_error="skip")
    assert ds.class_names == ["a", "b"] and len(ds) == 1 and ds.skipped.counts["image:unknown_class"] == 1


def test_an_empty_class_folder_is_named_or_kept_without_images(tmp_path):
    root = _folders(tmp_path, {"a": 2, "empty": 0})
    with pytest.raises(DatasetError, match=r"empty: class folder 'empty' holds no image \(.png"):
        ImageFolderDataset(root)
    with pytest.warns(UserWarning, match="on_error='skip'"):
        ds = ImageFolderDataset(root, on_error="skip")
    assert ds.class_names == ["a", "empty"] and ds.class_counts == [2, 0]


def test_folder_layout_mistakes_are_named(tmp_path):
    with pytest.raises(DatasetError, match="not found; check img_dir"):
        ImageFolderDataset(tmp_path / "nowhere")
    _png(tmp_path / "flat" / "a.png")
    with pytest.raises(DatasetError, match=r"flat has no class sub-folders; lay it out as .*<class>/<image>"):
        ImageFolderDataset(tmp_path / "flat")
    root = _folders(tmp_path / "mixed", {"a": 1})
    _png(root / "stray.png")
    with pytest.warns(UserWarning, match=r"1 image\(s\) lie outside the class folders \(e.g. stray.png\)"):
        ImageFolderDataset(root)


def test_empty_and_corrupt_image_files_are_named(tmp_path):
    root = _folders(tmp_path, {"a": 1})
    (root / "a" / "zero.png").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"a/zero.png is empty \(0 bytes\)"):
        ImageFolderDataset(root)
    (root / "a" / "zero.png").unlink()
    (root / "a" / "corrupt.png").write_bytes(b"not a png at all")
    strict = ImageFolderDataset(root, skip_bad_images=False)
    bad = strict.files.index(str(root / "a" / "corrupt.png"))
    with pytest.raises(ImageReadError, match=r"corrupt.png"):
        strict[bad]
    lenient = ImageFolderDataset(root)  # skip_bad_images=True: None, one warning naming the file
    with pytest.warns(UserWarning, match=r"corrupt.png.*skipping it"):
        assert lenient[bad] is None
    assert lenient.skipped.counts["image:unreadable_image"] == 1


def test_csv_rows_give_files_and_labels(tmp_path):
    for name in ("x.png", "sub/y.png", "z.png"):
        _png(tmp_path / "img" / name)
    (tmp_path / "labels.csv").write_text("file,label\nx.png,10\nsub/y.png,2\n\nz.png,10\n")
    ds = ImageFolderDataset(tmp_path / "img", ann_file=tmp_path / "labels.csv")
    assert ds.class_names == ["2", "10"]  # integers sort as numbers
    assert ds.labels.tolist() == [1, 0, 1] and ds[1]["labels"].tolist() == [0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,class\nx.png,a\n", r"labels.csv: the first row must name the columns 'file' and 'label'"),
        ("file,label\nx.png\n", r"labels.csv line 2: \['x.png'\] lacks a file or a label"),
        ("file,label\nx.png,a\nmissing.png,a\n", r"labels.csv line 3: image .*missing.png not found"),
        ("file,label\nx.png,a\nx.png,wolf\n", r"labels.csv line 3: label 'wolf' is not among the classes given"),
        ("file,label\n../x.png,a\n", r"labels.csv line 2: image file_name '../x.png' points outside img_dir"),
    ],
    ids=["header", "short_row", "missing_file", "unknown_label", "outside"],
)
def test_csv_mistakes_are_named_with_their_line(tmp_path, text, message):
    _png(tmp_path / "img" / "x.png")
    (tmp_path / "labels.csv").write_text(text)
    with pytest.raises(DatasetError, match=message):
        ImageFolderDataset(tmp_path / "img", ann_file=tmp_path / "labels.csv", classes=["a", "b"])


def _coco(tmp_path: Path) -> Path:
    img = np.zeros((48, 64, 3), np.uint8)
    img[10:20, 30:50] = 200
    cv2.imwrite(str(tmp_path / "a.png"), img)
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((30, 30, 3), np.uint8))
    data = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 64, "height": 48},
            {"id": 2, "file_name": "b.png", "width": 30, "height": 30},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [30, 10, 20, 10], "area": 200, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [0, 0, 8, 40], "area": 320, "iscrowd": 0},
            {"id": 3, "image_id": 2, "category_id": 7, "bbox": [1, 1, 10, 10], "area": 100, "iscrowd": 1},
            {"id": 4, "image_id": 2, "category_id": 3, "bbox": [5, 5, 1, 1], "area": 1, "iscrowd": 0},
        ],
        "categories": [{"id": 7, "name": "box"}, {"id": 3, "name": "bar"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(data))
    return tmp_path / "ann.json"


def test_coco_crops_are_the_boxes_with_a_margin_labelled_by_category(tmp_path):
    ann = _coco(tmp_path)
    ds = CocoCropsDataset(ann, tmp_path, margin=0.1, square=False)
    assert ds.class_names == ["bar", "box"]  # categories sorted by id (3, 7), as CocoDataset does
    assert len(ds) == 2 and ds.labels.tolist() == [1, 0]  # crowd and the 1-pixel box (min_size 2) left out
    assert ds.class_counts == [1, 1] and ds.label_to_cat_id == {0: 3, 1: 7}
    box = ds[0]
    assert box["image"].shape == (12, 24, 3) and box["labels"].tolist() == [1]  # 20x10 box + 10% each side
    assert (box["image"][1:-1, 2:-2] == 200).all()  # the object, with context around it
    square = CocoCropsDataset(ann, tmp_path, margin=0.0, square=True)
    assert square[0]["image"].shape == (20, 20, 3)  # grown to a square around the box centre
    assert square[1]["image"].shape == (40, 24, 3)  # a tall box near the border: clipped to the image
    assert crop_window(np.array([30, 10, 50, 20.0]), 0.0, True, 48, 64) == (30, 5, 50, 25)


def test_coco_crops_reuse_the_coco_checks_and_pipelines(tmp_path):
    ann = _coco(tmp_path)
    ds = build_dataset(
        {"type": "CocoCropsDataset", "ann_file": str(ann), "img_dir": str(tmp_path), "pipeline": TEST_PIPELINE}
    )
    assert all(ds[i]["image"].shape == (24, 24, 3) for i in range(len(ds)))
    data = json.loads(ann.read_text())
    data["annotations"][0]["category_id"] = 99
    ann.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"ann.json: annotation #0 \(id 1, image id 1\): category_id 99 is not in"):
        CocoCropsDataset(ann, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(CocoCropsDataset(ann, tmp_path, on_error="skip")) == 1


def test_val_fraction_splits_each_class_into_two_disjoint_parts(tmp_path):
    root = _folders(tmp_path / "photos", {"cat": 10, "dog": 5, "owl": 1, "yak": 2})
    train = ImageFolderDataset(root, val_fraction=0.2, subset="train")
    val = ImageFolderDataset(root, val_fraction=0.2, subset="val")
    assert train.class_names == val.class_names == ["cat", "dog", "owl", "yak"]
    assert not set(train.files) & set(val.files) and len(train) + len(val) == 18
    # 20% of each class, one at least of a class of two or more, none of a class of one
    assert val.class_counts == [2, 1, 0, 1] and train.class_counts == [8, 4, 1, 1]
    assert "4 images held out for validation (val_fraction 0.2 of each class, split_seed 0)" in val.held_out
    assert "14 images kept for training" in train.held_out and ImageFolderDataset(root).held_out is None
    # the same split each time; another seed draws other images of the class, the counts stay
    assert ImageFolderDataset(root, val_fraction=0.2, subset="val").files == val.files
    other = ImageFolderDataset(root, val_fraction=0.2, subset="val", split_seed=1)
    assert other.class_counts == val.class_counts and other.files != val.files
    # a class's draw does not depend on the other classes
    alone = _folders(tmp_path / "alone", {"cat": 10})
    held = ImageFolderDataset(alone, val_fraction=0.2, subset="val").files
    assert [Path(f).name for f in held] == [Path(f).name for f in val.files if "/cat/" in f]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"val_fraction": 1.0}, "val_fraction=1.0: give a share between 0 and 1"),
        ({"val_fraction": 0}, "val_fraction=0: give a share between 0 and 1"),
        ({"val_fraction": "0.2"}, "val_fraction='0.2'"),
        ({"val_fraction": 0.2, "subset": "validation"}, "subset='validation': give 'train' or 'val'"),
        ({"subset": "val"}, "subset='val' needs val_fraction"),
        ({"val_fraction": 0.2, "split_seed": 1.5}, "split_seed=1.5: give an integer"),
    ],
)
def test_bad_split_arguments_are_named(tmp_path, kwargs, message):
    root = _folders(tmp_path / "photos", {"cat": 3, "dog": 3})
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ImageFolderDataset(root, **kwargs)


def test_a_classes_file_with_a_blank_line_names_the_folders_it_lists(tmp_path):
    """Class folders are matched by name: a blank line between the names of a classes file is skipped."""
    val = _folders(tmp_path / "val", {"a": 1, "c": 2})
    (tmp_path / "classes.txt").write_text("c\n\nb\na\n")
    ds = ImageFolderDataset(val, classes=str(tmp_path / "classes.txt"))
    assert ds.class_names == ["c", "b", "a"] and ds.class_counts == [2, 0, 1]
