"""An annotation whose bbox and mask disagree: trained, but Mask R-CNN learns the json's box and YOLO-seg the box
shrunk to the mask (the object dropped where they do not meet). detkit check and a mask dataset warn."""

from __future__ import annotations

import warnings

from detkit.data.datasets.coco import CocoDataset
from detkit.data.validate import WARNING, validate_coco


def _shift_box(data: dict, ann_id: int, dx: float) -> None:
    ann = next(a for a in data["annotations"] if a["id"] == ann_id)
    ann["bbox"][0] += dx


def test_the_base_data_agrees_with_its_masks(coco_files):
    problems = validate_coco(coco_files.data, coco_files.img_dir, coco_files.ann_file, check_segmentation=True)
    assert not [p for p in problems if p.kind == "box_mask_mismatch"]  # polygon, both RLE forms, crowd


def test_a_shifted_box_is_a_warning_naming_the_annotation(coco_files):
    # ann 11: polygon x 4..24; ann 21: uncompressed RLE x 20..50; ann 12: compressed RLE; moved off their masks
    data = coco_files.edit(lambda d: (_shift_box(d, 11, 30), _shift_box(d, 21, 25), _shift_box(d, 12, -30)))
    problems = validate_coco(data, coco_files.img_dir, coco_files.ann_file, check_segmentation=True)
    loose = [p for p in problems if p.kind == "box_mask_mismatch"]
    assert sorted(p.ann_id for p in loose) == [11, 12, 21] and all(p.severity == WARNING for p in loose)
    assert "IoU 0.00" in next(p.message for p in loose if p.ann_id == 11)
    assert not [
        p for p in validate_coco(data, coco_files.img_dir, coco_files.ann_file) if p.kind == "box_mask_mismatch"
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        CocoDataset(ann_file=coco_files.ann_file, img_dir=coco_files.img_dir, with_masks=True)
    said = [str(w.message) for w in caught if "disagrees with its mask" in str(w.message)]
    assert len(said) == 1 and "3 annotation(s)" in said[0] and "detkit check" in said[0]
    with warnings.catch_warnings(record=True) as caught:  # a box model reads no masks: nothing to say
        warnings.simplefilter("always")
        CocoDataset(ann_file=coco_files.ann_file, img_dir=coco_files.img_dir)
    assert not [w for w in caught if "disagrees with its mask" in str(w.message)]


def test_a_small_disagreement_is_not_reported(coco_files):
    data = coco_files.edit(lambda d: _shift_box(d, 21, 4))  # 30 px wide box moved by 4 px: IoU 0.76
    problems = validate_coco(data, coco_files.img_dir, coco_files.ann_file, check_segmentation=True)
    assert not [p for p in problems if p.kind == "box_mask_mismatch"]


def test_a_stray_polygon_part_is_left_out_with_a_warning(coco_files):
    """Labelme / CVAT exports hold stray 1-2 point parts beside the real polygon: the image went under skip (an
    error), and pycocotools reads a 2-point part as a box. Now the part is left out of the mask and of the ground
    truth that evaluation scores, with a warning; a polygon made only of such parts stays an error."""
    good = [4, 6, 24, 6, 24, 16, 14, 16, 4, 12]  # ann 11's polygon
    data = coco_files.edit(lambda d: d["annotations"][0].update(segmentation=[good, [40, 40, 44, 44]]))
    problems = validate_coco(data, coco_files.img_dir, coco_files.ann_file, check_segmentation=True)
    assert [p.kind for p in problems if p.severity != WARNING] == []
    (w,) = [p for p in problems if p.kind == "polygon_part_dropped"]
    assert w.ann_id == 11 and "#1" in w.message
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = CocoDataset(ann_file=coco_files.ann_file, img_dir=coco_files.img_dir, with_masks=True)
    assert any("polygon parts of under 3 points" in str(x.message) for x in caught)
    assert ds.coco.anns[11]["segmentation"] == [good]  # what evaluation scores against
    coco_files.edit(lambda d: d["annotations"][0].update(segmentation=[good]))
    clean = CocoDataset(ann_file=coco_files.ann_file, img_dir=coco_files.img_dir, with_masks=True)
    assert (ds[0]["masks"] == clean[0]["masks"]).all()  # the stray part adds nothing (not a box at 40..44)
    only = coco_files.edit(lambda d: d["annotations"][0].update(segmentation=[[40, 40, 44, 44]]))
    bad = validate_coco(only, coco_files.img_dir, coco_files.ann_file, check_segmentation=True)
    assert [p.kind for p in bad if p.ann_id == 11] == ["bad_polygon"]


def test_scoring_a_json_with_a_stray_part_matches_what_trains(coco_files):
    """coco_metrics / analyze read the json themselves: the stray part is left out there too (pycocotools would
    make it a box of the ground-truth mask, so the same predictions scored another segm AP)."""
    from pycocotools import mask as mask_utils

    from detkit.evaluation import coco_metrics

    good = [4, 6, 24, 6, 24, 16, 14, 16, 4, 12]
    rle = mask_utils.merge(mask_utils.frPyObjects([good], 48, 64))
    rle["counts"] = rle["counts"].decode()
    results = [{"image_id": 1, "category_id": 3, "segmentation": rle, "score": 0.9}]
    clean = coco_files.edit(lambda d: d["annotations"][0].update(segmentation=[good]))
    stray = coco_files.edit(lambda d: d["annotations"][0].update(segmentation=[good, [40, 2, 60, 40]]))
    assert coco_metrics(stray, results, iou_type="segm") == coco_metrics(clean, results, iou_type="segm")
