"""`detkit convert` never writes outside --out-dir, never overwrites, and names the classes file it was given.

Each test fails without its fix: a --split / --prefix with '..' or '/' escaped --out-dir; an existing --out
file or label file was replaced; a JSON / YAML classes file was read as one-class lists; messages said
``convert_dataset.py coco2yolo:`` and ``classes.txt has N names``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from detkit.cli.convert_dataset import main
from detkit.data.converters import (
    DatasetError,
    coco_to_voc,
    convert_coco_to_voc,
    convert_coco_to_yolo,
    convert_voc,
    convert_yolo,
    read_class_names,
)


def _digest(folder: Path) -> dict:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _cli(capsys, *args) -> tuple[int, str]:
    """(exit status, stderr) of ``detkit convert ARGS`` run in this process."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def _one_line(err: str, command: str) -> str:
    (line,) = err.strip().splitlines()
    assert line.startswith(f"convert {command}: error: ") and "Traceback" not in err, err
    return line


@pytest.fixture
def yolo(coco_files, tmp_path) -> tuple[Path, Path]:
    """(label dir, classes file) of ``coco_files`` converted by coco2yolo."""
    convert_coco_to_yolo(coco_files.ann_file, coco_files.img_dir, tmp_path / "yolo")
    return tmp_path / "yolo" / "labels", tmp_path / "yolo" / "classes.txt"


# ----------------------------------------------------------------------------- --split / --prefix


ESCAPES = [
    ("--split", "../../../../escaped_split"),
    ("--split", "sub/val"),
    ("--split", "..\\val"),
    ("--split", ""),
    ("--split", "  "),
    ("--prefix", "../../../esc_"),
    ("--prefix", "a/b_"),
    ("--prefix", "a\\b_"),
]


@pytest.mark.parametrize(("flag", "value"), ESCAPES)
def test_split_and_prefix_cannot_leave_out_dir(coco_files, tmp_path, capsys, flag, value):
    out = tmp_path / "conv" / "deep" / "er" / "voc3"  # '../' x4 from ImageSets/Main stays inside tmp_path
    before = _digest(tmp_path)
    args = ["coco2voc", "--ann-file", coco_files.ann_file, "--img-dir", coco_files.img_dir, "--out-dir", out]
    code, err = _cli(capsys, *args, flag, value)
    line = _one_line(err, "coco2voc")
    named = " ".join(f"{flag} {value!r}".split())  # messages are one line: runs of blanks become one
    assert code == 2 and named in line and "plain name" in line, line
    assert _digest(tmp_path) == before and not (tmp_path / "conv").exists()  # nothing written anywhere


@pytest.mark.parametrize(("flag", "value"), ESCAPES)
def test_library_refuses_split_and_prefix_too(coco_files, tmp_path, flag, value):
    kw = {"split": value} if flag == "--split" else {"prefix": value}
    with pytest.raises(ValueError, match=flag):
        convert_coco_to_voc(coco_files.ann_file, coco_files.img_dir, tmp_path / "voc", **kw)
    assert not (tmp_path / "voc").exists()
    if flag == "--prefix":
        with pytest.raises(ValueError, match=r"^prefix '"):
            coco_to_voc(coco_files.data, prefix=value)


def test_plain_split_and_prefix_still_work(coco_files, tmp_path):
    out = tmp_path / "voc"
    convert_coco_to_voc(coco_files.ann_file, coco_files.img_dir, out, split="val.2024", prefix="v_")
    assert (out / "ImageSets" / "Main" / "val.2024.txt").read_text() == "v_a\nv_sub_b\nv_c\n"
    assert sorted(p.name for p in out.rglob("*") if p.is_file() and p.suffix == ".xml") == [
        "v_a.xml",
        "v_c.xml",
        "v_sub_b.xml",
    ]


# ----------------------------------------------------------------------------- never overwrite


def test_yolo2coco_refuses_an_existing_out_file(coco_files, yolo, tmp_path, capsys):
    labels, classes = yolo
    own = tmp_path / "train_copy.json"
    own.write_bytes(coco_files.ann_file.read_bytes())  # the user's own COCO file
    before = own.read_bytes()
    args = ["yolo2coco", "--label-dir", labels, "--img-dir", coco_files.img_dir, "--classes", classes, "--out", own]
    code, err = _cli(capsys, *args)
    line = _one_line(err, "yolo2coco")
    assert code == 2 and f"--out {own} exists already" in line and "never overwrite" in line, line
    assert "choose a new --out path" in line and own.read_bytes() == before
    with pytest.raises(DatasetError, match="exists already"):
        convert_yolo(labels, coco_files.img_dir, classes, own)
    assert own.read_bytes() == before


def test_voc2coco_refuses_an_existing_out_file(coco_files, tmp_path, capsys):
    voc = tmp_path / "voc"
    convert_coco_to_voc(coco_files.ann_file, coco_files.img_dir, voc)
    out = tmp_path / "existing.json"
    out.write_text('{"mine": 1}')
    args = ["voc2coco", "--ann-dir", voc / "Annotations", "--img-dir", voc / "JPEGImages", "--out", out]
    code, err = _cli(capsys, *args)
    assert code == 2 and "exists already" in _one_line(err, "voc2coco")
    assert out.read_text() == '{"mine": 1}'
    with pytest.raises(DatasetError, match="exists already"):
        convert_voc(voc / "Annotations", voc / "JPEGImages", out)
    assert out.read_text() == '{"mine": 1}'
    assert _cli(capsys, *args[:-1], tmp_path / "new.json")[0] == 0  # a new path converts


def test_coco2yolo_twice_into_one_folder_is_refused(coco_files, yolo, tmp_path, capsys):
    labels, _ = yolo
    out = labels.parent
    (labels / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # edited by the user after the first run
    before = _digest(out)
    args = ["coco2yolo", "--ann-file", coco_files.ann_file, "--img-dir", coco_files.img_dir, "--out-dir", out]
    code, err = _cli(capsys, *args)
    line = _one_line(err, "coco2yolo")
    assert code == 2 and "3 output file(s) exist already" in line and "never overwrite" in line, line
    assert _digest(out) == before


def test_coco2yolo_refuses_another_classes_txt(coco_files, tmp_path, capsys):
    out = tmp_path / "y"
    out.mkdir()
    (out / "classes.txt").write_text("cat\ndog\n")  # no label file collides; the class list would be replaced
    args = ["coco2yolo", "--ann-file", coco_files.ann_file, "--img-dir", coco_files.img_dir, "--out-dir", out]
    code, err = _cli(capsys, *args)
    assert code == 2 and "classes.txt" in _one_line(err, "coco2yolo")
    assert (out / "classes.txt").read_text() == "cat\ndog\n" and not (out / "labels").exists()


def test_coco2yolo_adds_other_images_next_to_the_same_classes(coco_files, yolo, tmp_path):
    labels, classes = yolo
    data = json.loads(coco_files.ann_file.read_text())
    for im in data["images"]:
        im["file_name"] = "val/" + im["file_name"]
    (coco_files.img_dir.parent / "val_root").mkdir()
    val = coco_files.img_dir.parent / "val_root" / "val"
    coco_files.img_dir.rename(val)
    (tmp_path / "val.json").write_text(json.dumps(data))
    stamp = classes.stat().st_mtime_ns
    convert_coco_to_yolo(tmp_path / "val.json", val.parent, labels.parent)  # no output exists: allowed
    assert (labels / "val" / "a.txt").is_file() and classes.stat().st_mtime_ns == stamp  # classes.txt kept


# ----------------------------------------------------------------------------- the classes file


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ('{"images": [], "annotations": [], "categories": []}', "JSON"),
        ('["cat", "dog"]', "JSON"),
        ("path: .\ntrain: images/train\nnames:\n  0: cat\n", "YAML mapping"),
        ("- cat\n- dog\n", "YAML list"),
        ("cat\x00dog\n", "binary"),
    ],
)
def test_classes_file_that_is_no_name_list_is_refused(coco_files, yolo, tmp_path, capsys, text, what):
    labels, _ = yolo
    bad = tmp_path / "train_copy.json"
    bad.write_text(text)
    with pytest.raises(DatasetError, match=f"classes file {bad} is .*{what}"):
        read_class_names(bad)
    out = tmp_path / "new.json"
    args = ["yolo2coco", "--label-dir", labels, "--img-dir", coco_files.img_dir, "--classes", bad, "--out", out]
    code, err = _cli(capsys, *args)
    line = _one_line(err, "yolo2coco")
    assert code == 2 and str(bad) in line and what in line and "one class name per line" in line, line
    assert not out.exists()


def test_plain_class_names_are_read(tmp_path):
    f = tmp_path / "names.txt"
    f.write_text("person\ntraffic light\n\n1\ntrue\n")
    assert read_class_names(f) == ["person", "traffic light", "1", "true"]


def test_class_index_message_names_the_classes_file(coco_files, yolo, tmp_path, capsys):
    labels, _ = yolo
    one = tmp_path / "my_names.txt"
    one.write_text("ant\n")
    out = tmp_path / "new.json"
    args = ["yolo2coco", "--label-dir", labels, "--img-dir", coco_files.img_dir, "--classes", one, "--out", out]
    code, err = _cli(capsys, *args)
    line = _one_line(err, "yolo2coco")
    assert code == 2 and f"--classes {one} has 1 class name(s)" in line and "classes.txt" not in line, line


def test_errors_name_the_command_not_the_script(coco_files, tmp_path, capsys):
    code, err = _cli(capsys, "coco2yolo", "--ann-file", tmp_path / "nope.json", "--img-dir", coco_files.img_dir)
    assert code == 2  # argparse: --out-dir missing
    code, err = _cli(
        capsys,
        *["coco2yolo", "--ann-file", tmp_path / "nope.json", "--img-dir", coco_files.img_dir, "--out-dir", "y"],
    )
    assert code == 2 and "convert_dataset.py" not in err and _one_line(err, "coco2yolo")
