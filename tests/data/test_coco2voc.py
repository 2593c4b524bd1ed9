"""coco2voc: a VOC folder from a COCO json + images; voc2coco gives the boxes back; nothing is overwritten."""

from __future__ import annotations

import hashlib
import json

import pytest
from pycocotools.coco import COCO

from detkit.cli.convert_dataset import main
from detkit.data.converters import coco_to_voc, convert_coco_to_voc, convert_voc
from detkit.data.validate import DatasetError


def _digest(folder) -> dict:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_round_trip_with_voc2coco(coco_files, tmp_path):
    out = tmp_path / "voc"
    before = _digest(coco_files.img_dir), coco_files.ann_file.read_bytes()
    stats = convert_coco_to_voc(coco_files.ann_file, coco_files.img_dir, out, split="train")
    assert (_digest(coco_files.img_dir), coco_files.ann_file.read_bytes()) == before  # inputs untouched
    assert stats["images"] == 3 and stats["objects"] == 4 and stats["difficult"] == 1 and stats["split"] == "train"
    assert (out / "ImageSets" / "Main" / "train.txt").read_text() == "a\nsub_b\nc\n"
    assert (out / "classes.txt").read_text() == "ant\nmoose\nzebra\n"  # category-id order: ids 3, 7, 10
    assert (out / "JPEGImages" / "sub_b.png").read_bytes() == (coco_files.img_dir / "sub" / "b.png").read_bytes()
    convert_voc(out / "Annotations", out / "JPEGImages", tmp_path / "back.json", out / "classes.txt")
    back, orig = COCO(str(tmp_path / "back.json")), COCO(str(coco_files.ann_file))
    names = {c["id"]: c["name"] for c in orig.dataset["categories"]}
    back_names = {c["id"]: c["name"] for c in back.dataset["categories"]}
    by_file = {im["file_name"]: im["id"] for im in back.dataset["images"]}
    for im in orig.dataset["images"]:
        voc_name = im["file_name"].replace("/", "_")
        got = sorted(
            (back_names[a["category_id"]], a["bbox"], a["difficult"]) for a in back.imgToAnns[by_file[voc_name]]
        )
        want = sorted((names[a["category_id"]], a["bbox"], a["iscrowd"]) for a in orig.imgToAnns[im["id"]])
        assert got == want


def test_boxes_rounded_and_clipped():
    coco = {
        "images": [{"id": 1, "file_name": "x.jpg", "width": 50, "height": 40}],
        "categories": [{"id": 1, "name": "a & b"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [-3.0, 2.4, 20.2, 50.0]},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [60, 2, 5, 5]},  # outside: skipped
        ],
    }
    records, stats = coco_to_voc(coco, prefix="p_")
    xml = records["p_x"]["xml"]
    assert "<filename>p_x.jpg</filename>" in xml and "<name>a &amp; b</name>" in xml
    assert "<xmin>1</xmin>" in xml and "<ymin>3</ymin>" in xml and "<xmax>17</xmax>" in xml and "<ymax>40</ymax>" in xml
    assert stats["empty_skipped"] == 1 and stats["rounded"] == 1


def test_cli_never_overwrites_and_adds_a_split(coco_files, tmp_path, capsys):
    out = tmp_path / "voc"
    args = ["coco2voc", "--ann-file", coco_files.ann_file, "--img-dir", coco_files.img_dir, "--out-dir", out]
    assert main([str(a) for a in args]) == 0
    assert "coco2voc: wrote" in capsys.readouterr().out
    before = _digest(out)
    assert main([str(a) for a in args + ["--split", "val"]]) == 2
    err = capsys.readouterr().err
    assert "6 output file(s) exist already" in err and "never overwrite" in err and err.count("\n") == 1
    assert _digest(out) == before
    assert main([str(a) for a in args + ["--split", "val", "--prefix", "v_"]]) == 0
    assert (out / "ImageSets" / "Main" / "val.txt").read_text() == "v_a\nv_sub_b\nv_c\n"
    assert (out / "Annotations" / "v_c.xml").is_file()


def test_cli_refuses_bad_inputs(coco_files, tmp_path, capsys):
    data = json.loads(coco_files.ann_file.read_text())
    data["annotations"][0]["category_id"] = 99
    coco_files.write(data)
    args = ["coco2voc", "--ann-file", coco_files.ann_file, "--img-dir", coco_files.img_dir]
    assert main([str(a) for a in args + ["--out-dir", tmp_path / "v"]]) == 2
    assert "unknown_category" in capsys.readouterr().err and not (tmp_path / "v").exists()
    assert main([str(a) for a in args + ["--out-dir", coco_files.img_dir / "voc"]]) == 2
    assert "inside --img-dir" in capsys.readouterr().err
    (coco_files.img_dir / "c.png").unlink()
    with pytest.raises(DatasetError, match=r"1 image\(s\) of .*ann\.json are not there \(e\.g\. c\.png\)"):
        del data["annotations"][0]
        coco_files.write(data)
        convert_coco_to_voc(coco_files.ann_file, coco_files.img_dir, tmp_path / "v")
