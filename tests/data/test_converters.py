"""Tests of the dataset converters (detkit.data.converters)."""

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from detkit.data.converters import (
    DatasetError,
    coco_to_yolo,
    convert_coco_to_yolo,
    convert_voc,
    convert_yolo,
    voc_to_coco,
    yolo_to_coco,
)

VOC = Path(__file__).resolve().parents[1] / "fixtures" / "voc"


def _voc_copy(tmp_path, with_images=True):
    """Copy the VOC fixture and write black JPEGs of each XML's <size> (real VOC names)."""
    ann = tmp_path / "Annotations"
    shutil.copytree(VOC / "Annotations", ann)
    img = tmp_path / "JPEGImages"
    img.mkdir()
    if with_images:
        for x in sorted(ann.glob("*.xml")):
            r = ET.parse(x).getroot()
            w, h = int(r.find("size/width").text), int(r.find("size/height").text)
            cv2.imwrite(str(img / r.find("filename").text), np.zeros((h, w, 3), np.uint8))
    return ann, img


def _xml_boxes(xml_path):
    """(name, xmin, ymin, xmax, ymax, difficult) of the top-level objects of one VOC XML."""
    out = []
    for o in ET.parse(xml_path).getroot().findall("object"):
        b = o.find("bndbox")
        out.append(
            (
                o.find("name").text,
                *(int(b.find(t).text) for t in ("xmin", "ymin", "xmax", "ymax")),
                int(o.find("difficult").text),
            )
        )
    return out


def test_voc_real_files_to_coco(tmp_path):
    ann, img = _voc_copy(tmp_path)
    out = tmp_path / "voc.json"
    stats = convert_voc(ann, img, out)
    coco = COCO(str(out))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["chair", "dog", "person"]  # sorted
    assert coco.getCatIds() == [1, 2, 3]
    assert stats["images"] == 3 and stats["annotations"] == 8 and stats["difficult"] == 2
    by_name = {im["file_name"]: im for im in coco.dataset["images"]}
    assert (by_name["2007_000027.jpg"]["width"], by_name["2007_000027.jpg"]["height"]) == (486, 500)
    assert (by_name["000005.jpg"]["width"], by_name["000005.jpg"]["height"]) == (500, 375)
    names = {c["id"]: c["name"] for c in coco.dataset["categories"]}
    for xml in sorted(ann.glob("*.xml")):
        image_id = by_name[xml.stem + ".jpg"]["id"]
        got = [(names[a["category_id"]], a["bbox"], a["difficult"]) for a in coco.imgToAnns[image_id]]
        want = [(n, [x0 - 1, y0 - 1, x1 - x0 + 1, y1 - y0 + 1], d) for n, x0, y0, x1, y1, d in _xml_boxes(xml)]
        assert got == want
    # the first real record: 2007_000027 person 174 101 349 351 -> x0=173, y0=100, x1=349, y1=351;
    # its <part> boxes (head, hand, foot) are not objects
    person = coco.imgToAnns[by_name["2007_000027.jpg"]["id"]]
    assert len(person) == 1 and person[0]["bbox"] == [173.0, 100.0, 176.0, 251.0]
    assert person[0]["area"] == 176.0 * 251.0 and person[0]["iscrowd"] == 0


def test_voc_classes_file_and_unknown_class(tmp_path):
    ann, img = _voc_copy(tmp_path)
    classes = tmp_path / "classes.txt"
    classes.write_text("person\ndog\nchair\ncat\n")
    coco, _ = voc_to_coco(ann, img, ["person", "dog", "chair", "cat"])
    cats = [(c["id"], c["name"]) for c in coco["categories"]]
    assert cats == [(1, "person"), (2, "dog"), (3, "chair"), (4, "cat")]
    with pytest.raises(DatasetError, match=r"000001\.xml.*'dog'"):
        voc_to_coco(ann, img, ["person", "chair"])


def test_voc_without_images_uses_xml_size(tmp_path):
    ann, img = _voc_copy(tmp_path, with_images=False)
    with pytest.raises(DatasetError, match=r"none of the 3 XML files has its image.*000001\.xml \(000001\.jpg\)"):
        voc_to_coco(ann, img)
    coco, stats = voc_to_coco(ann, img, keep_missing=True)
    assert stats["missing_images"] == 3
    assert {(i["width"], i["height"]) for i in coco["images"]} == {(353, 500), (500, 375), (486, 500)}


def test_voc_size_mismatch_and_bad_xml(tmp_path):
    ann, img = _voc_copy(tmp_path)
    cv2.imwrite(str(img / "000001.jpg"), np.zeros((10, 20, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"000001\.xml.*353x500.*20x10"):
        voc_to_coco(ann, img)
    ann2, img2 = _voc_copy(tmp_path / "b")
    (ann2 / "broken.xml").write_text("<annotation><object><name>dog</name>")
    with pytest.raises(DatasetError, match=r"broken\.xml.*invalid XML"):
        voc_to_coco(ann2, img2)
    (ann2 / "broken.xml").write_text("<annotation><filename>../../etc/passwd</filename></annotation>")
    with pytest.raises(DatasetError, match="relative path inside the image folder"):
        voc_to_coco(ann2, img2)
    cv2.imwrite(str(img2 / "x.jpg"), np.zeros((10, 10, 3), np.uint8))
    (ann2 / "broken.xml").write_text(
        "<annotation><filename>x.jpg</filename><size><width>10</width><height>10</height></size>"
        "<object><name>dog</name><bndbox><xmin>5</xmin><ymin>5</ymin><xmax>3</xmax><ymax>9</ymax>"
        "</bndbox></object></annotation>"
    )
    with pytest.raises(DatasetError, match=r"broken\.xml object #0.*empty"):
        voc_to_coco(ann2, img2)


def _write_img(path, h, w):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros((h, w, 3), np.uint8))


def test_yolo_boxes_polygons_and_negatives(tmp_path):
    img, lab = tmp_path / "images", tmp_path / "labels"
    _write_img(img / "a.jpg", 100, 200)
    _write_img(img / "b.png", 50, 40)
    _write_img(img / "sub" / "c.jpg", 64, 64)
    lab.mkdir()
    (lab / "a.txt").write_text("1 0.5 0.5 0.2 0.4\n\n0 0.1 0.2 0.5 0.2 0.3 0.6\n")
    (lab / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    coco, stats = yolo_to_coco(lab, img, ["cat", "dog"])
    assert [i["file_name"] for i in coco["images"]] == ["a.jpg", "b.png", "sub/c.jpg"]
    assert [(i["width"], i["height"]) for i in coco["images"]] == [(200, 100), (40, 50), (64, 64)]
    assert stats["negatives"] == 2 and stats["orphan_labels"] == 1 and stats["polygons"] == 1
    box, poly = coco["annotations"]
    assert box["category_id"] == 2 and box["bbox"] == pytest.approx([80, 30, 40, 40])
    assert poly["category_id"] == 1
    assert poly["segmentation"][0] == pytest.approx([20, 20, 100, 20, 60, 60])
    assert poly["bbox"] == pytest.approx([20, 20, 80, 40])
    assert 0.8 * 1600 < poly["area"] < 1.2 * 1600  # triangle 80 x 40 / 2
    (tmp_path / "out.json").write_text(json.dumps(coco))
    loaded = COCO(str(tmp_path / "out.json"))
    assert loaded.annToMask(loaded.anns[poly["id"]]).sum() == pytest.approx(poly["area"])


def test_yolo_duplicates_empty_boxes_and_mixed_lines_are_reported(tmp_path):
    """Ultralytics removes duplicate lines; a zero-size box and a box line among polygons are named by file and line."""
    _write_img(tmp_path / "im" / "a.jpg", 10, 20)
    _write_img(tmp_path / "im" / "b.jpg", 10, 20)
    (tmp_path / "lb").mkdir()
    (tmp_path / "lb" / "a.txt").write_text(
        "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0 0.2\n0 0.5 0.5 0.20 0.2\n"
    )
    (tmp_path / "lb" / "b.txt").write_text("0 0.1 0.1 0.6 0.1 0.6 0.6\n1 0.5 0.5 0.2 0.2\n")
    with pytest.warns(UserWarning) as caught:
        coco, stats = yolo_to_coco(tmp_path / "lb", tmp_path / "im", ["a", "b"])
    text = "\n".join(str(w.message) for w in caught)
    assert "a.txt line 2: the same label as line 1; removed (as Ultralytics does) (and 1 more like it)" in text
    assert "a.txt line 3: the box has zero width or height (0 x 2 px in the 20x10 image); left out" in text
    assert "b.txt line 2: a box line (class cx cy w h) among the polygon lines" in text and "kept as a box" in text
    assert stats["duplicate_labels"] == 2 and stats["empty_boxes"] == 1 and stats["box_among_polygons"] == 1
    assert [len(a["segmentation"]) for a in coco["annotations"]] == [0, 1, 0]  # a: one box; b: polygon, box


@pytest.mark.parametrize(
    "line,msg",
    [
        ("2 0.5 0.5 0.1 0.1", "class index 2"),
        ("0 0.5 0.5 1.7 0.1", "normalised"),
        ("0 0.5 0.5 0.1 0.1 0.2", "even number"),
        ("x 0.5 0.5 0.1 0.1", "non-numeric"),
    ],
)
def test_yolo_bad_lines_name_file_and_line(tmp_path, line, msg):
    _write_img(tmp_path / "im" / "a.jpg", 10, 10)
    (tmp_path / "lb").mkdir()
    (tmp_path / "lb" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n" + line + "\n")
    with pytest.raises(DatasetError, match=rf"a\.txt line 2.*{msg}"):
        yolo_to_coco(tmp_path / "lb", tmp_path / "im", ["a", "b"])


def _random_coco(rng, n_images=5):
    cats = [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}, {"id": 11, "name": "bird"}]
    images, anns = [], []
    for i in range(n_images):
        h, w = int(rng.integers(40, 700)), int(rng.integers(40, 700))
        images.append({"id": 10 + i, "file_name": f"img_{i}.jpg", "width": w, "height": h})
        for _ in range(int(rng.integers(0, 5))):
            x0, y0 = rng.uniform(0, w - 5), rng.uniform(0, h - 5)
            bw, bh = rng.uniform(1, w - x0), rng.uniform(1, h - y0)
            poly = [x0, y0, x0 + bw, y0, x0 + bw / 2, y0 + bh]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": 10 + i,
                    "category_id": int(rng.choice([3, 7, 11])),
                    "bbox": [x0, y0, bw, bh],
                    "area": bw * bh,
                    "iscrowd": 0,
                    "segmentation": [poly],
                }
            )
    return {"images": images, "annotations": anns, "categories": cats}


def test_coco_yolo_round_trip_boxes(tmp_path):
    coco = _random_coco(np.random.default_rng(0))
    coco["annotations"].append(
        {
            "id": 99,
            "image_id": 10,
            "category_id": 3,
            "bbox": [1, 1, 5, 5],
            "area": 25,
            "iscrowd": 1,
            "segmentation": {"size": [1, 1], "counts": [1]},
        }
    )
    img = tmp_path / "images"
    for im in coco["images"]:
        _write_img(img / im["file_name"], im["height"], im["width"])
    ann_file = tmp_path / "in.json"
    ann_file.write_text(json.dumps(coco))
    before = ann_file.read_bytes()
    stats = convert_coco_to_yolo(ann_file, img, tmp_path / "yolo")
    assert ann_file.read_bytes() == before
    assert stats["crowd_skipped"] == 1 and stats["missing_images"] == 0
    assert (tmp_path / "yolo" / "classes.txt").read_text().split() == ["cat", "dog", "bird"]  # id order
    assert len(list((tmp_path / "yolo" / "labels").glob("*.txt"))) == len(coco["images"])
    convert_yolo(tmp_path / "yolo" / "labels", img, tmp_path / "yolo" / "classes.txt", tmp_path / "back.json")
    back = json.loads((tmp_path / "back.json").read_text())
    name_of = {c["id"]: c["name"] for c in coco["categories"]}
    back_name = {c["id"]: c["name"] for c in back["categories"]}
    back_img = {i["file_name"]: i["id"] for i in back["images"]}
    for im in coco["images"]:
        orig = [a for a in coco["annotations"] if a["image_id"] == im["id"] and not a["iscrowd"]]
        got = [a for a in back["annotations"] if a["image_id"] == back_img[im["file_name"]]]
        assert [name_of[a["category_id"]] for a in orig] == [back_name[a["category_id"]] for a in got]
        for a, b in zip(orig, got):
            np.testing.assert_allclose(b["bbox"], a["bbox"], atol=1e-3)


def test_coco_to_yolo_segments(tmp_path):
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 50}],
        "categories": [{"id": 5, "name": "x"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 5,
                "bbox": [10, 10, 20, 10],
                "iscrowd": 0,
                "segmentation": [[10, 10, 30, 10, 30, 20]],
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 5,
                "bbox": [0, 0, 50, 25],
                "iscrowd": 0,
                "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10], [40, 15, 50, 15, 50, 25]],
            },
            {"id": 3, "image_id": 1, "category_id": 5, "bbox": [60, 30, 10, 10], "iscrowd": 0},
        ],
    }
    labels, names, stats = coco_to_yolo(coco, segments=True)
    lines = labels["a.txt"].splitlines()
    assert names == ["x"] and len(lines) == 3 and stats["box_as_polygon"] == 1
    assert lines[0] == "0 0.1 0.2 0.3 0.2 0.3 0.4"
    merged = np.array(lines[1].split()[1:], float).reshape(-1, 2) * [100, 50]
    assert len(merged) == 4 + 3 + 2  # both parts plus the two bridge points
    assert {tuple(p) for p in merged} >= {(0, 0), (10, 10), (40, 15), (50, 25)}
    corners = np.array(lines[2].split()[1:], float).reshape(-1, 2).tolist()
    assert corners == [[0.6, 0.6], [0.7, 0.6], [0.7, 0.8], [0.6, 0.8]]


def test_coco_to_yolo_bad_reference():
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [{"id": 4, "image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1]}],
    }
    with pytest.raises(DatasetError, match="annotation id 4"):
        coco_to_yolo(coco)
