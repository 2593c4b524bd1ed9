"""``on_error``: the same rule for every dataset type, also wrapped (MixDataset for mosaic, TiledDataset for tiling).

'raise' stops with a message naming the file; 'skip' leaves the bad records out with a warning that names the
file, counts them in ``dataset.skipped`` and reads on without an exception.
"""

from __future__ import annotations

import copy
import inspect
import warnings

import numpy as np
import pytest
from PIL import Image

import detkit.data.datasets  # noqa: F401  (registers every dataset)
from detkit.data.datasets.coco import CocoDataset
from detkit.data.datasets.mix import MixDataset
from detkit.data.datasets.seg_folder import SegFolderDataset
from detkit.data.datasets.tiled import TiledDataset
from detkit.data.image_io import ImageReadError
from detkit.data.validate import DatasetError
from detkit.registry import DATASETS


def _bad_box(files) -> str:
    data = copy.deepcopy(files.data)
    data["annotations"][0]["bbox"] = [4, 6, -1, 10]  # annotation 11 of image 1
    files.write(data)
    return "ann.json"


def _cut_rle(files) -> str:
    data = copy.deepcopy(files.data)
    seg = data["annotations"][1]["segmentation"]  # annotation 12: compressed RLE of image 1
    seg["counts"] = seg["counts"][:-2]  # passes the structure check; decoding would leave memory uninitialised
    files.write(data)
    return "annotation id 12"


def _bad_label_values(seg) -> str:
    sem = np.zeros((40, 56), np.uint8)
    sem[5, 5] = 7
    Image.fromarray(sem).save(seg.mask_dir / "im2.png")
    return "im2.png"


def _no_label_map(seg) -> str:
    (seg.mask_dir / "im1.png").unlink()
    return "im1.png"


def _coco(files, **kw):
    return lambda on_error: CocoDataset(files.ann_file, files.img_dir, on_error=on_error, **kw)


def _seg(seg):
    return lambda on_error: SegFolderDataset(seg.img_dir, seg.mask_dir, classes=seg.classes, on_error=on_error)


def _seg_cfg(seg) -> dict:
    return {
        "type": "SegFolderDataset",
        "img_dir": str(seg.img_dir),
        "mask_dir": str(seg.mask_dir),
        "classes": seg.classes,
    }


def _coco_cfg(files) -> dict:
    return {"type": "CocoDataset", "ann_file": str(files.ann_file), "img_dir": str(files.img_dir)}


# name -> (break the data, build(on_error), what the skip counts must hold)
SCENARIOS = {
    "coco_bad_record": (lambda f, s: _bad_box(f), lambda f, s: _coco(f), "annotation:bad_box"),
    "coco_bad_mask_when_read": (
        lambda f, s: _cut_rle(f),
        lambda f, s: _coco(f, with_masks=True),
        "annotation:bad_mask",
    ),
    "coco_unreadable_image": (
        lambda f, s: f.image_path("c.png").write_bytes(b"not a png") and "c.png",
        lambda f, s: _coco(f, skip_bad_images=False),
        "image:unreadable_image",
    ),
    "seg_folder_no_label_map": (lambda f, s: _no_label_map(s), lambda f, s: _seg(s), "image:no_label_map"),
    "seg_folder_bad_label_map": (lambda f, s: _bad_label_values(s), lambda f, s: _seg(s), "image:bad_label_map"),
    "mix_coco": (
        lambda f, s: _bad_box(f),
        lambda f, s: (
            lambda on_error: MixDataset(ann_file=str(f.ann_file), img_dir=str(f.img_dir), size=64, on_error=on_error)
        ),
        "annotation:bad_box",
    ),
    "mix_coco_masks": (
        lambda f, s: _cut_rle(f),
        lambda f, s: (
            lambda on_error: MixDataset(
                {"type": "CocoDataset", "with_masks": True},
                ann_file=str(f.ann_file),
                img_dir=str(f.img_dir),
                size=64,
                on_error=on_error,
            )
        ),
        "annotation:bad_mask",
    ),
    "mix_seg_folder": (
        lambda f, s: _bad_label_values(s),
        lambda f, s: lambda on_error: MixDataset(_seg_cfg(s), size=32, on_error=on_error),
        "image:bad_label_map",
    ),
    "tiled_coco": (
        lambda f, s: _bad_box(f),
        lambda f, s: lambda on_error: TiledDataset(_coco_cfg(f), tile_size=32, overlap=0.0, on_error=on_error),
        "annotation:bad_box",
    ),
    "tiled_seg_folder": (
        lambda f, s: _bad_label_values(s),
        lambda f, s: lambda on_error: TiledDataset(_seg_cfg(s), tile_size=32, overlap=0.0, on_error=on_error),
        "image:bad_label_map",
    ),
}


def _read_all(ds) -> list:
    return [ds[i] for i in range(len(ds))]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_raise_names_the_file_and_skip_counts(name, coco_files, seg_files):
    breaks, builder, counted = SCENARIOS[name]
    needle = breaks(coco_files, seg_files)
    build = builder(coco_files, seg_files)
    with pytest.raises((DatasetError, ImageReadError), match=needle.replace(".", r"\.")):
        _read_all(build("raise"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = build("skip")
        samples = _read_all(ds)
    assert any(needle in str(w.message) for w in caught), [str(w.message) for w in caught]
    assert ds.on_error == "skip"  # a wrapper reads the source dataset's through
    assert ds.skipped.counts[counted] >= 1, ds.skipped
    assert any(s is not None for s in samples)


def test_skip_leaves_out_the_image_of_a_bad_mask(coco_files):
    """A mask found bad when read takes its image, as a bad record found when built does (the sample is None);
    CocoCropsDataset's source, whose samples are the boxes, leaves out the annotation alone."""
    from detkit.data.datasets.coco_crops import _BoxSource

    _cut_rle(coco_files)
    ds = CocoDataset(coco_files.ann_file, coco_files.img_dir, with_masks=True, on_error="skip")
    with pytest.warns(UserWarning, match=r"annotation id 12 \(image id 1\).*compressed RLE.*its image left out"):
        assert ds[0] is None
    assert ds.skipped.counts["annotation:bad_mask"] == 1 and ds[1] is not None
    boxes = _BoxSource(coco_files.ann_file, coco_files.img_dir, with_masks=True, on_error="skip")
    with pytest.warns(UserWarning, match=r"annotation id 12 .*; annotation left out"):
        sample = boxes[0]
    assert sample["labels"].tolist() == [0] and sample["masks"].shape == (1, 48, 64)  # ann 11 stays


def test_seg_folder_skip_drops_images_without_label_maps(seg_files):
    _no_label_map(seg_files)
    with pytest.warns(UserWarning, match=r"1 image\(s\) have no label map.*im1\.png.*on_error='skip' left them out"):
        ds = SegFolderDataset(seg_files.img_dir, seg_files.mask_dir, classes=seg_files.classes, on_error="skip")
    assert [p.rsplit("/", 1)[-1] for p in ds.images] == ["im0.jpg", "im2.jpg"]
    assert ds.skipped.counts == {"image:no_label_map": 1}


def test_wrapper_option_reaches_the_inner_dataset(coco_files):
    _bad_box(coco_files)
    with pytest.warns(UserWarning, match="on_error='skip' dropped"):
        mix = DATASETS.build(
            {
                "type": "MixDataset",
                "ann_file": str(coco_files.ann_file),
                "img_dir": str(coco_files.img_dir),
                "size": 64,
                "on_error": "skip",
            }
        )
    assert mix.dataset.on_error == "skip" and mix.skipped is mix.dataset.skipped
    with pytest.warns(UserWarning, match="on_error='skip' dropped"):
        built = CocoDataset(coco_files.ann_file, coco_files.img_dir, on_error="skip")
    with pytest.raises(ValueError, match="on_error='raise' applies to a dataset config.*already built"):
        TiledDataset(built, tile_size=32, on_error="raise")
    assert TiledDataset(built, tile_size=32, on_error="skip").on_error == "skip"
    with pytest.raises(ValueError, match="on_error is given twice"):
        MixDataset({**_coco_cfg(coco_files), "on_error": "raise"}, size=64, on_error="skip")


def test_every_dataset_type_takes_on_error():
    ours = {
        name: DATASETS.get(name)
        for name in DATASETS
        if DATASETS.get(name).__module__.startswith("detkit.data.datasets.")
    }
    assert set(ours) >= {"CocoDataset", "SegFolderDataset", "MixDataset", "TiledDataset"}
    for name, cls in ours.items():
        param = inspect.signature(cls).parameters.get("on_error")
        assert param is not None, f"{name} has no on_error"
        assert param.default in ("raise", None), name  # None: the wrapped dataset's own setting


@pytest.mark.parametrize("cls", [CocoDataset, SegFolderDataset])
def test_bad_on_error_value_is_named(cls, coco_files, seg_files):
    kw = (
        {"ann_file": coco_files.ann_file, "img_dir": coco_files.img_dir}
        if cls is CocoDataset
        else {"img_dir": seg_files.img_dir, "mask_dir": seg_files.mask_dir, "classes": seg_files.classes}
    )
    with pytest.raises(ValueError, match=rf"{cls.__name__}: on_error must be 'raise' .* or 'skip'.*'ignore'"):
        cls(on_error="ignore", **kw)
