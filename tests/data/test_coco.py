"""CocoDataset: sample contract, label mapping, masks, crowd, negatives, bad input in both modes."""

from __future__ import annotations

import copy
import sys
import types
import warnings

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from detkit.data.datasets.coco import CocoDataset, build_sem_seg
from detkit.data.image_io import ImageReadError
from detkit.data.validate import DatasetError
from detkit.registry import DATASETS


def _ds(files, **kw) -> CocoDataset:
    return CocoDataset(ann_file=files.ann_file, img_dir=files.img_dir, **kw)


def test_label_mapping_non_contiguous_ids(coco_files):
    ds = _ds(coco_files)
    assert ds.cat_ids == [3, 7, 10]
    assert ds.class_names == ["ant", "moose", "zebra"]
    assert ds.cat_id_to_label == {3: 0, 7: 1, 10: 2}
    assert ds.label_to_cat_id == {0: 3, 1: 7, 2: 10}
    assert all(ds.label_to_cat_id[ds.cat_id_to_label[c]] == c for c in ds.cat_ids)
    s = ds[0]
    assert s["labels"].tolist() == [0, 2]  # ann 11 is 'ant' (id 3), ann 12 'zebra' (id 10)
    assert ds.num_classes == 3


def test_sample_contract(coco_files):
    ds = _ds(coco_files)
    assert len(ds) == 3 and ds.img_ids == [1, 2, 5]
    np.testing.assert_allclose(ds.aspect_ratios, [48 / 64, 60 / 80, 1.0])
    s = ds[0]
    assert set(s) == {"image", "boxes", "labels", "image_id", "orig_size", "scale_factor", "pad_offset"}
    assert s["image"].dtype == np.uint8 and s["image"].shape == (48, 64, 3)
    bgr = cv2.imread(str(coco_files.img_dir / "a.png"))
    np.testing.assert_array_equal(s["image"], bgr[:, :, ::-1])
    assert s["boxes"].dtype == np.float32 and s["labels"].dtype == np.int64
    np.testing.assert_array_equal(s["boxes"], [[4, 6, 24, 16], [36, 22, 53, 39]])
    assert s["image_id"] == 1 and s["orig_size"] == (48, 64)
    assert s["scale_factor"] == (1.0, 1.0) and s["pad_offset"] == (0, 0)


def test_built_through_registry(coco_files):
    ds = DATASETS.build(
        {"type": "CocoDataset", "ann_file": str(coco_files.ann_file), "img_dir": str(coco_files.img_dir)}
    )
    assert isinstance(ds, CocoDataset) and len(ds) == 3


def test_masks_polygon_and_rle_match_pycocotools(coco_files):
    ds = _ds(coco_files, with_masks=True)
    ref = COCO(str(coco_files.ann_file))
    for i, img_id in enumerate(ds.img_ids):
        s = ds[i]
        anns = [a for a in ref.imgToAnns[img_id] if not a["iscrowd"]]
        h, w = s["image"].shape[:2]
        assert s["masks"].dtype == np.uint8 and s["masks"].shape == (len(anns), h, w)
        for m, a in zip(s["masks"], anns):
            np.testing.assert_array_equal(m, ref.annToMask(a))
    assert ds[0]["masks"].sum() > 0 and ds[1]["masks"].sum() == 20 * 30


def test_masks_only_when_asked(coco_files):
    assert "masks" not in _ds(coco_files)[0]
    assert "sem_seg" not in _ds(coco_files)[0]


def test_crowd_excluded_and_reported(coco_files):
    ds = _ds(coco_files, with_masks=True)
    s = ds[1]  # image 2: one moose + one crowd ant
    assert s["labels"].tolist() == [1] and s["boxes"].shape == (1, 4) and s["masks"].shape[0] == 1
    info = ds.get_ann_info(1)
    np.testing.assert_array_equal(info["crowd_boxes"], [[2, 40, 30, 58]])
    np.testing.assert_array_equal(info["boxes"], s["boxes"])
    assert info["labels"].tolist() == [1] and info["image_id"] == 2 and info["orig_size"] == (60, 80)


def test_negatives_kept_or_filtered(coco_files):
    ds = _ds(coco_files, with_masks=True)
    s = ds[2]
    assert s["image_id"] == 5
    assert s["boxes"].shape == (0, 4) and s["boxes"].dtype == np.float32
    assert s["labels"].shape == (0,) and s["masks"].shape == (0, 64, 64)
    filtered = _ds(coco_files, filter_empty=True)
    assert filtered.img_ids == [1, 2] and len(filtered.aspect_ratios) == 2
    # an image whose only annotation is a crowd counts as empty
    data = copy.deepcopy(coco_files.data)
    data["annotations"] = [a for a in data["annotations"] if a["id"] != 21]
    coco_files.write(data)
    assert _ds(coco_files, filter_empty=True).img_ids == [1]


def test_sem_seg_from_instances(coco_files):
    ds = _ds(coco_files, with_sem_seg=True)
    sem = ds[1]["sem_seg"]  # image 2: moose (label 1) at [10:30, 20:50], crowd at [40:58, 2:30]
    assert sem.shape == (60, 80) and sem.dtype == np.uint8
    assert (sem[10:30, 20:50] == 1).all()
    assert (sem[40:58, 2:30] == 255).all() and (sem[0:5, 60:] == 255).all()
    assert set(np.unique(sem)) == {1, 255}
    bg = _ds(coco_files, with_sem_seg=True, sem_background=True)[1]["sem_seg"]
    assert (bg[10:30, 20:50] == 2).all() and (bg[0:5, 60:] == 0).all() and (bg[40:58, 2:30] == 255).all()


def test_sem_seg_smaller_objects_on_top():
    masks = np.zeros((2, 10, 10), np.uint8)
    masks[0, 4:6, 4:6] = 1  # small object, label 1, listed first
    masks[1, 0:8, 0:8] = 1  # large object, label 0
    crowd = np.zeros((1, 10, 10), np.uint8)
    crowd[0, 6:10, 6:10] = 1  # overlaps the large object at [6:8, 6:8]
    sem = build_sem_seg(masks, np.array([1, 0]), crowd, num_classes=2)
    assert (sem[4:6, 4:6] == 1).all() and sem[0, 0] == 0 and sem[7, 7] == 0
    assert sem[9, 9] == 255 and sem[0, 9] == 255
    assert build_sem_seg(masks, np.array([1, 0]), crowd, num_classes=300).dtype == np.int32


def test_pipeline_callable_and_specs(coco_files, monkeypatch):
    ds = _ds(coco_files, pipeline=lambda s: {**s, "seen": True})
    assert ds[0]["seen"]
    calls = []
    fake = types.ModuleType("detkit.data.transforms")
    fake.as_pipeline = lambda specs: calls.append(specs) or (lambda s: {**s, "built": len(specs)})
    monkeypatch.setitem(sys.modules, "detkit.data.transforms", fake)
    ds = _ds(coco_files, pipeline=[{"type": "A"}, {"type": "B"}])
    assert calls == [[{"type": "A"}, {"type": "B"}]] and ds[0]["built"] == 2


def test_class_names_check(coco_files):
    _ds(coco_files, class_names=["ant", "moose", "zebra"])
    with pytest.raises(DatasetError, match=r"class_names.*differ"):
        _ds(coco_files, class_names=["zebra", "ant", "moose"])


def test_box_slightly_outside_is_clipped(coco_files):
    data = copy.deepcopy(coco_files.data)
    data["annotations"][0]["bbox"] = [-3, 40, 20, 12]  # 3 px left, 4 px below a 64x48 image
    coco_files.write(data)
    np.testing.assert_array_equal(_ds(coco_files)[0]["boxes"][0], [0, 40, 17, 48])


# --- bad input: (mutation of the json, substrings the error must contain) --------------------------


def _set(path, value):
    def f(d):
        obj = d
        for k in path[:-1]:
            obj = obj[k]
        obj[path[-1]] = value

    return f


BAD = {
    "zero_box": (_set(["annotations", 0, "bbox"], [4, 6, 0, 10]), ["empty_box", "id 11", "zero width or height"]),
    "negative_box": (_set(["annotations", 1, "bbox"], [36, 22, 5, -3]), ["bad_box", "id 12"]),
    "far_outside": (_set(["annotations", 1, "bbox"], [60, 22, 30, 10]), ["box_outside", "id 12"]),
    "unknown_category": (_set(["annotations", 2, "category_id"], 99), ["unknown_category", "id 21", "99"]),
    "dotdot_path": (_set(["images", 0, "file_name"], "../a.png"), ["unsafe_path", "'../a.png'", "relative to img_dir"]),
    "absolute_path": (
        _set(["images", 0, "file_name"], "/etc/hosts"),
        ["unsafe_path", "absolute", "relative to img_dir"],
    ),
    "missing_file": (_set(["images", 1, "file_name"], "nope.png"), ["missing_image", "'nope.png'", "id 2"]),
    "duplicate_image_id": (_set(["images", 2, "id"], 1), ["duplicate_image_id", "id 1"]),
    "duplicate_ann_id": (_set(["annotations", 1, "id"], 11), ["duplicate_ann_id", "id 11"]),
    "duplicate_category_id": (_set(["categories", 1, "id"], 10), ["duplicate_category_id", "id 10"]),
    "unknown_image": (_set(["annotations", 0, "image_id"], 42), ["unknown_image", "image id 42"]),
    "missing_key": (lambda d: d["annotations"][0].pop("bbox"), ["missing_key", "['bbox']", "id 11"]),
    "missing_images": (lambda d: d.pop("images"), ["missing_key", "'images'"]),
    "missing_annotations": (
        lambda d: d.pop("annotations"),
        ["missing_key", "'annotations' is missing", "a test-info file without annotations cannot be trained"],
    ),
    "null_category_id": (_set(["categories", 0, "id"], None), ["bad_id", "category #0", "id is null"]),
    "same_file_twice": (
        _set(["images", 2, "file_name"], "./a.png"),
        ["duplicate_file", "image #2 (id 5)", "'./a.png' is the file of image #0 (id 1, file 'a.png')"],
    ),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_raises_clear_error(coco_files, name):
    mutate, expected = BAD[name]
    data = copy.deepcopy(coco_files.data)
    mutate(data)
    coco_files.write(data)
    with pytest.raises(DatasetError) as e:
        _ds(coco_files)
    msg = str(e.value)
    assert str(coco_files.ann_file) in msg
    for part in expected:
        assert part in msg, f"{part!r} not in {msg!r}"


def test_invalid_json_names_file(coco_files):
    coco_files.write(text='{"images": [1, 2,')
    with pytest.raises(DatasetError, match=r"ann\.json: not valid JSON \(line 1"):
        _ds(coco_files)


def test_missing_ann_file_and_img_dir(coco_files):
    with pytest.raises(DatasetError, match="nothere.json.*not found"):
        CocoDataset(ann_file=coco_files.root / "nothere.json", img_dir=coco_files.img_dir)
    with pytest.raises(DatasetError, match="noimg.*not found"):
        CocoDataset(ann_file=coco_files.ann_file, img_dir=coco_files.root / "noimg")


def test_bad_segmentation_only_checked_with_masks(coco_files):
    data = copy.deepcopy(coco_files.data)
    data["annotations"][0]["segmentation"] = [[1, 2, 3, 4]]
    coco_files.write(data)
    assert len(_ds(coco_files)) == 3
    with pytest.raises(DatasetError, match=r"\[bad_polygon\].*id 11"):
        _ds(coco_files, with_masks=True)


def test_skip_mode_drops_and_counts(coco_files):
    data = copy.deepcopy(coco_files.data)
    data["images"][1]["file_name"] = "../b.png"  # image 2 dropped with its 2 annotations
    data["annotations"][0]["bbox"] = [4, 6, -1, 10]  # annotation 11 dropped, and its image 1 (as Ultralytics)
    data["annotations"][1]["category_id"] = 55  # annotation 12 dropped
    data["images"].append({"id": 9, "file_name": "gone.png", "width": 10, "height": 10})
    coco_files.write(data)
    with pytest.warns(UserWarning) as rec:
        ds = _ds(coco_files, on_error="skip")
    msgs = [str(w.message) for w in rec if "on_error='skip'" in str(w.message)]
    assert len(msgs) == 1
    msg = msgs[0]
    assert "dropped 3 image(s) (bad_annotation: 1, missing_image: 1, unsafe_path: 1)" in msg
    assert "4 annotation(s) (bad_box: 1, image_dropped: 2, unknown_category: 1)" in msg
    assert ds.img_ids == [5]  # image 1 lost its two objects: kept, it would teach them as background
    assert ds[0]["boxes"].shape == (0, 4)
    assert ds.class_names == ["ant", "moose", "zebra"]
    # the user's file is untouched
    assert coco_files.ann_file.read_text() == __import__("json").dumps(data)


def test_skip_mode_keeps_first_of_duplicate_ids(coco_files):
    data = copy.deepcopy(coco_files.data)
    data["annotations"][1]["id"] = 11
    coco_files.write(data)
    with pytest.warns(UserWarning, match="duplicate_ann_id: 1"):
        ds = _ds(coco_files, on_error="skip")
    assert ds[0]["labels"].tolist() == [0]


def test_error_names_on_error_of_any_split(coco_files):
    coco_files.edit(_set(["annotations", 0, "bbox"], [4, 6, 0, 10]))
    with pytest.raises(DatasetError) as e:
        _ds(coco_files)
    assert "(data.train.on_error, data.val.on_error or data.test.on_error)" in str(e.value)
    assert "e.g. data.train.on_error" not in str(e.value)


def test_skip_mode_drops_the_second_record_of_one_file(coco_files):
    coco_files.edit(_set(["images", 0, "file_name"], "sub/./b.png"))  # image 1 names image 2's file: 2 goes
    with pytest.warns(UserWarning, match=r"dropped 1 image\(s\) \(duplicate_file: 1\)"):
        ds = _ds(coco_files, on_error="skip")
    assert ds.img_ids == [1, 5]


def test_null_category_id_is_named_with_skip_too(coco_files):
    coco_files.edit(_set(["categories", 1, "id"], None))  # 'ant', the category of annotations 11 and 22
    with pytest.raises(DatasetError, match=r"\[bad_id\] .*ann\.json: category #1 \(id None\): id is null"):
        _ds(coco_files, on_error="skip")


def _windows_names(d):
    d["images"][0]["file_name"] = ".\\a.png"
    d["images"][1]["file_name"] = "sub\\b.png"


def test_windows_separators_in_file_name(coco_files):
    coco_files.edit(_windows_names)
    ds = _ds(coco_files)
    assert ds[0]["image"].shape == (48, 64, 3) and ds[1]["image"].shape == (60, 80, 3)


@pytest.mark.parametrize("annotations,why", [([], "it has no annotations"), ("crowd", "every annotation is a crowd")])
def test_no_object_to_train_on_warns_naming_the_file(coco_files, annotations, why):
    original = copy.deepcopy(coco_files.data)
    crowd = [a for a in original["annotations"] if a["iscrowd"]]
    coco_files.edit(lambda d: d.update(annotations=crowd if annotations == "crowd" else annotations))
    with pytest.warns(UserWarning, match=rf"ann\.json: no object to learn or evaluate \({why}.*3 images is a negative"):
        _ds(coco_files)
    coco_files.write(original)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a dataset with objects does not warn
        _ds(coco_files)


def test_evaluation_of_the_dataset_names_its_file(coco_files):
    from detkit.evaluation import CocoEvaluator

    coco_files.edit(lambda d: d["annotations"][0].pop("area"))  # the dataset takes it; COCO evaluation does not
    evaluator = CocoEvaluator(dataset=_ds(coco_files))
    with pytest.raises(ValueError, match=r"^\S*ann\.json: annotation id=11 .*has no area"):
        _ = evaluator.coco_gt


def test_skip_mode_still_raises_on_categories(coco_files):
    data = copy.deepcopy(coco_files.data)
    data["categories"][0]["id"] = 3
    coco_files.write(data)
    with pytest.raises(DatasetError, match="duplicate_category_id"):
        _ds(coco_files, on_error="skip")


def test_corrupt_image_skipped_with_one_warning(coco_files):
    coco_files.image_path("a.png").write_bytes(b"garbage, not a png")
    ds = _ds(coco_files)
    with pytest.warns(UserWarning, match=r"a\.png.*image id 1.*skip_bad_images"):
        assert ds[0] is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ds[0] is None  # no second warning for the same file
    assert ds[1] is not None
    strict = _ds(coco_files, skip_bad_images=False)
    with pytest.raises(ImageReadError, match=r"a\.png"):
        strict[0]


def test_an_image_whose_size_is_not_the_jsons_is_refused_or_skipped(coco_files):
    """Its boxes are in the json's frame, not the image's: training on it would teach misplaced boxes."""
    data = copy.deepcopy(coco_files.data)
    data["images"][2]["width"] = 70
    coco_files.write(data)
    with pytest.raises(DatasetError, match=r"c\.png: the image is 64x64 .* says 70x64: its boxes are in the json"):
        _ds(coco_files)[2]
    skipping = _ds(coco_files, on_error="skip")
    with pytest.warns(UserWarning, match=r"says 70x64.*skipping it \(on_error='skip'\)"):
        assert skipping[2] is None
    assert skipping.skipped.counts == {"image:size_mismatch": 1}
    assert _ds(coco_files)[1] is not None  # the other images read as before


def test_bad_on_error_value(coco_files):
    with pytest.raises(ValueError, match="on_error"):
        _ds(coco_files, on_error="ignore")


def test_dataset_pickles_for_worker_processes(coco_files):
    import pickle

    ds = pickle.loads(pickle.dumps(_ds(coco_files, with_masks=True)))
    assert ds[0]["masks"].shape == (2, 48, 64) and ds.cat_id_to_label == {3: 0, 7: 1, 10: 2}


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_an_img_dir_without_any_of_the_images_is_one_message(coco_files, tmp_path, on_error):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError) as e:
        CocoDataset(ann_file=coco_files.ann_file, img_dir=empty, on_error=on_error)
    msg = str(e.value)
    assert f"img_dir {empty} holds none of the" in msg and "file_name values are relative to" in msg
    assert "\n" not in msg and "ERROR [missing_image]" not in msg  # one line, not one per image


def test_a_missing_relative_folder_says_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        DatasetError,
        match=r"image folder data/shapes/train .*not found \(a relative path is read from "
        r"the current folder, .*\); the packaged configs' shapes data is made with: detkit make-shapes",
    ):
        CocoDataset(ann_file="data/shapes/train.json", img_dir="data/shapes/train")
    with pytest.raises(DatasetError, match=r"annotation file mine.json not found \(a relative path is read from"):
        (tmp_path / "imgs").mkdir()
        CocoDataset(ann_file="mine.json", img_dir="imgs")


def test_skip_keeps_the_image_of_a_box_without_area(coco_files):
    """A zero-size box is no object to learn: 'skip' leaves the box out and keeps its image (as YOLO's zero-size
    lines); a negative size is a broken record, and takes its image."""
    coco_files.edit(_set(["annotations", 0, "bbox"], [4, 6, 0, 10]))
    with pytest.warns(UserWarning, match=r"dropped 0 image\(s\) \(none\) and 1 annotation\(s\) \(empty_box: 1\)"):
        ds = _ds(coco_files, on_error="skip")
    assert 1 in ds.img_ids and ds.skipped.counts["annotation:empty_box"] == 1
