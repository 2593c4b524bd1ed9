"""tools/check_dataset.py on a YOLO data.yaml, a Pascal VOC folder and a config's datasets (detkit.data.format_check):
clean conversions report what the COCO original reports; a broken label line or XML is named, exit 1; mistakes exit 2."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from detkit.cli.convert_dataset import main as convert
from detkit.data.dataset_check import check_dataset
from detkit.data.datasets.yolo import YOLODataset
from detkit.data.format_check import check_config_data, check_voc, check_yolo
from detkit.data.synthetic import make_shapes
from detkit.data.validate import DatasetError

ROOT = Path(__file__).resolve().parents[2]
SPLITS = ("train", "val")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> dict:
    """A small shapes set (COCO json + PNGs, polygons) and its conversions by tools/convert_dataset.py:
    ``yolo`` (Ultralytics layout with data.yaml, polygon lines) and ``voc`` (both splits in one folder)."""
    root = tmp_path_factory.mktemp("formats")
    paths = make_shapes(root / "coco", num_train=6, num_val=4, size=(96, 96), seed=3)
    yolo, voc = root / "yolo", root / "voc"
    for split in SPLITS:
        ann, img = paths[f"{split}_ann_file"], paths[f"{split}_img_dir"]
        out = root / "converted" / split
        assert (
            convert(["coco2yolo", "--ann-file", str(ann), "--img-dir", str(img), "--out-dir", str(out), "--segments"])
            == 0
        )
        shutil.copytree(img, yolo / "images" / split)
        shutil.copytree(out / "labels", yolo / "labels" / split)
        prefix = [] if split == "train" else ["--prefix", "val_"]
        assert convert(["coco2voc", "--ann-file", str(ann), "--img-dir", str(img), "--out-dir", str(voc), *prefix]) == 0
    names = (root / "converted" / "train" / "classes.txt").read_text().split()
    data = {"path": ".", "train": "images/train", "val": "images/val", "names": dict(enumerate(names))}
    (yolo / "data.yaml").write_text(yaml.safe_dump(data))
    return {"coco": paths, "yolo": yolo, "voc": voc, "root": root}


@pytest.fixture
def copy_of(shapes, tmp_path):
    """``copy_of('yolo')``: a copy of a converted dataset that a test may break."""

    def copy(name: str) -> Path:
        return Path(shutil.copytree(shapes[name], tmp_path / name))

    return copy


@pytest.fixture(scope="module")
def tool():
    """tools/check_dataset.py as a module (its ``main`` runs in this process: no interpreter start per call)."""
    spec = importlib.util.spec_from_file_location("_check_formats_tool", ROOT / "tools" / "check_dataset.py")
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "tools"))
    return module


def _main(tool, capsys, *args) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of the tool's ``main``; a user's mistake exits through SystemExit."""
    try:
        code = tool.main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def _by_name(per_class: dict[str, int]) -> dict[str, int]:
    """``{'circle (id 1)': 3}`` -> ``{'circle': 3}``: category ids differ between formats, names do not."""
    return {re.sub(r" \(id .*\)$", "", k): n for k, n in per_class.items()}


def _coco_report(shapes, split: str):
    return check_dataset(shapes["coco"][f"{split}_ann_file"], shapes["coco"][f"{split}_img_dir"])


def _detkit_check(*args) -> subprocess.CompletedProcess:
    """``detkit check ARGS`` in a new interpreter (the console command; ``tool`` runs tools/check_dataset.py)."""
    command = [sys.executable, "-m", "detkit.cli.main", "check", *map(str, args)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def _digest(root: Path) -> dict:
    return {str(p): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_clean_yolo_reports_the_coco_counts(shapes):
    reports = check_yolo(shapes["yolo"] / "data.yaml")  # every split the yaml lists
    assert [r.split for r in reports] == ["split train", "split val"]
    for split, report in zip(SPLITS, reports):
        coco = _coco_report(shapes, split)
        assert report.errors == [] and report.warnings == [], report.format()
        assert _by_name(report.summary["per_class"]) == _by_name(coco.summary["per_class"])
        for key in ("images", "annotations", "images_without_annotations", "sizes"):
            assert report.summary[key] == coco.summary[key], key
        text = report.format()
        assert "read by YOLODataset" in text and f"{report.summary['annotations']} polygon" in text  # masks checked
        assert "imbalance (largest / smallest class)" in text and "image sizes (h x w): 96x96" in text


def test_clean_voc_reports_the_coco_counts(shapes):
    for split in SPLITS:
        report = check_voc(shapes["voc"], split, str(shapes["voc"] / "classes.txt"))
        coco = _coco_report(shapes, split)
        assert report.errors == [] and report.warnings == [], report.format()
        assert report.summary["per_class"] == coco.summary["per_class"]  # the same classes file: the same ids
        assert report.summary["images"] == coco.summary["images"]
        assert "segmentations: not checked" in report.format()  # VOC boxes only
    whole = check_voc(shapes["voc"])  # every XML file: both splits
    assert whole.summary["images"] == sum(_coco_report(shapes, s).summary["images"] for s in SPLITS)
    assert "--classes" in whole.format()  # classes.txt lies there: the note names the option


def test_cli_clean_yolo_and_voc_exit_0(shapes, tool, capsys):
    for args in ([shapes["yolo"] / "data.yaml", "--split", "val"], [shapes["voc"], "--split", "train"]):
        code, out, err = _main(tool, capsys, *args)
        assert code == 0, out + err
        assert "0 error(s), 0 warning(s)" in out and out.count("Summary of") == 1


def test_broken_label_line_names_file_and_line_exit_1(copy_of):
    yolo = copy_of("yolo")
    label = sorted((yolo / "labels" / "val").glob("*.txt"))[0]
    n = len(label.read_text().splitlines())
    with label.open("a") as f:
        f.write("9 0.5 0.5 0.1 0.1\n0 0.5 x 0.2 0.2\n")
    before = _digest(yolo)
    res = _detkit_check(yolo / "data.yaml")
    assert res.returncode == 1, res.stdout + res.stderr
    assert f"ERROR [bad_label] {label} line {n + 1}: class index 9" in res.stdout
    assert f"ERROR [bad_label] {label} line {n + 2}: non-numeric value" in res.stdout
    assert "Traceback" not in res.stderr and _digest(yolo) == before
    train, val = res.stdout.strip().split("\n\n")  # one report per split, train first
    assert train.endswith("0 error(s), 0 warning(s)") and val.endswith("2 error(s), 0 warning(s)")


def test_image_that_does_not_decode_and_orphan_label(copy_of):
    yolo = copy_of("yolo")
    image = sorted((yolo / "images" / "train").glob("*.png"))[1]
    image.write_bytes(image.read_bytes()[:-20])  # the header (size) reads, the pixels do not decode
    (yolo / "labels" / "train" / "lost.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (report,) = check_yolo(yolo / "data.yaml", ["train"])
    assert [p.kind for p in report.errors] == ["unreadable_image"] and image.name in report.errors[0].message
    assert [p.kind for p in report.warnings] == ["unused_files"] and "lost.txt" in report.warnings[0].message
    assert check_yolo(yolo / "data.yaml", ["train"], read_images=False)[0].errors == []


def test_broken_xml_and_unknown_class_named_exit_1(copy_of, tool, capsys):
    voc = copy_of("voc")
    xmls = sorted((voc / "Annotations").glob("val_*.xml"))
    with_object = next(x for x in xmls if "<object>" in x.read_text())
    broken = next(x for x in xmls if x != with_object)
    broken.write_text("<annotation><object>")
    with_object.write_text(re.sub(r"<name>\w+</name>", "<name>dragon</name>", with_object.read_text(), count=1))
    code, out, err = _main(tool, capsys, voc, "--split", "val", "--classes", voc / "classes.txt")
    assert code == 1, out + err
    assert f"ERROR [bad_xml] {broken}: invalid XML (no element found: line 1" in out
    assert f"ERROR [bad_label] {with_object}: object class 'dragon' is not in the class list" in out
    assert "2 error(s)" in out


def test_dataset_error_hint_names_the_command_that_lists_them_all(copy_of, tool, capsys):
    yolo = copy_of("yolo")
    label = sorted((yolo / "labels" / "train").glob("*.txt"))[0]
    label.write_text("".join(f"{7 + k} 0.5 0.5 0.1 0.1\n" for k in range(8)))  # 8 bad lines, 5 shown
    with pytest.raises(DatasetError) as e:
        YOLODataset(data_yaml=str(yolo / "data.yaml"), split="train")
    command = f"detkit check {yolo / 'data.yaml'} --split train"
    assert f"... and 3 more (run {command} for the details)" in str(e.value)
    code, out, err = _main(tool, capsys, *command.split()[2:])  # the command the message names
    assert code == 1 and out.count("ERROR [bad_label]") == 8, out + err


def test_config_datasets_built_with_skip_report_what_they_leave_out(copy_of, tmp_path, tool, capsys):
    yolo, voc = copy_of("yolo"), copy_of("voc")
    with sorted((yolo / "labels" / "train").glob("*.txt"))[0].open("a") as f:
        f.write("5 0.5 0.5 0.1 0.1\n")
    config = tmp_path / "data.yaml"
    train = {"type": "YOLODataset", "data_yaml": str(yolo / "data.yaml"), "split": "train", "with_masks": True}
    val = {"type": "VOCDataset", "root": str(voc), "split": "val", "classes": str(voc / "classes.txt")}
    config.write_text(yaml.safe_dump({"data": {"train": train, "val": val}}))
    reports = check_config_data(yaml.safe_load(config.read_text()), str(config), read_images=False)
    assert [r.split for r in reports] == ["data.train", "data.val"]
    assert [p.kind for p in reports[0].errors] == ["bad_label"] and reports[1].errors == []
    assert "it leaves out 1 image(s) (bad_annotation 1) and 1 annotation(s) (bad_label 1)" in reports[0].format()
    assert "it leaves out nothing" in reports[1].format()
    code, out, err = _main(tool, capsys, "--config", config, "--split", "val", "--no-images")
    assert code == 0 and out.count("Summary of") == 1, out + err


def _coco_spec(ann_file, img_dir) -> dict:
    return {"type": "CocoDataset", "ann_file": str(ann_file), "img_dir": str(img_dir)}


def test_config_whose_splits_disagree_on_categories_is_an_error(shapes, tmp_path, tool, capsys):
    coco = shapes["coco"]
    val = json.loads(Path(coco["val_ann_file"]).read_text())
    dropped = val["categories"].pop()["id"]  # training refuses it: 'disagree on categories (4 ... against 3)'
    val["annotations"] = [a for a in val["annotations"] if a["category_id"] != dropped]
    (tmp_path / "val.json").write_text(json.dumps(val))
    train = _coco_spec(coco["train_ann_file"], coco["train_img_dir"])
    config = tmp_path / "cfg.yaml"
    config.write_text(
        yaml.safe_dump({"data": {"train": train, "val": _coco_spec(tmp_path / "val.json", coco["val_img_dir"])}})
    )
    cfg = yaml.safe_load(config.read_text())
    reports = check_config_data(cfg, str(config), read_images=False)
    assert reports[0].errors == [] and [p.kind for p in reports[1].errors] == ["category_mismatch"]
    assert "data.train (" in reports[1].errors[0].message and "disagree on categories" in reports[1].errors[0].message
    code, out, err = _main(tool, capsys, "--config", config, "--no-images")
    assert code == 1 and "ERROR [category_mismatch]" in out, out + err
    assert check_config_data(cfg, str(config), ["val"], read_images=False)[0].errors == []  # one split: no pair


def test_tool_main_reads_every_voc_xml_by_default(shapes, tool, capsys):
    code, out, _ = _main(tool, capsys, shapes["voc"], "--no-images")
    assert code == 0 and "every XML file in Annotations/" in out


def _mistakes(root: Path, shapes: dict) -> dict:
    """name -> (argv, words of the one-line message)."""
    (root / "other.yaml").write_text("epochs: 3\n")
    (root / "empty").mkdir()
    (root / "VOCdevkit").mkdir()
    shutil.copytree(shapes["voc"], root / "VOCdevkit" / "VOC2007")
    coco = shapes["coco"]
    return {
        "not_a_data_yaml": ([root / "other.yaml"], "a data.yaml is a mapping with 'names'"),
        "detkit_config_as_data_yaml": ([ROOT / "configs/yolo/yolo_n_shapes.yaml"], "--config"),
        "missing_split": ([shapes["yolo"] / "data.yaml", "--split", "test"], "no 'test' split (it has train, val)"),
        "img_dir_with_data_yaml": ([shapes["yolo"] / "data.yaml", coco["val_img_dir"]], "takes no IMG_DIR"),
        "classes_with_data_yaml": ([shapes["yolo"] / "data.yaml", "--classes", "c.txt"], "--classes does not apply"),
        "neither_voc_nor_class_folders": ([root / "empty"], "no class sub-folders and is no VOC folder"),
        "voc_devkit_folder": ([root / "VOCdevkit"], "holds VOC folders (VOC2007)"),
        "missing_voc_split": ([shapes["voc"], "--split", "test"], "split files there: train, val"),
        "split_with_coco": ([coco["val_ann_file"], coco["val_img_dir"], "--split", "val"], "a COCO json is one split"),
        "config_and_dataset": ([shapes["voc"], "--config", root / "other.yaml"], "not both"),
        "config_without_data": (["--config", ROOT / "configs/yolo/yolo_n_shapes.yaml", "--split", "test"], "data.test"),
    }


def test_mistakes_exit_2_with_one_line(shapes, tmp_path, tool, capsys):
    for name, (argv, words) in _mistakes(tmp_path, shapes).items():
        code, _, err = _main(tool, capsys, *argv)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, (name, err)
        assert words in lines[0] and "Traceback" not in err, (name, lines[0])


def test_detkit_check_mistake_is_one_line_exit_2(shapes):
    res = _detkit_check(shapes["yolo"] / "data.yaml", "--split", "test")
    assert res.returncode == 2 and res.stderr.startswith("detkit check: error: ") and "Traceback" not in res.stderr


def test_listed_split_that_cannot_be_read_is_reported_the_others_checked(copy_of, tool, capsys):
    """A Roboflow-style data.yaml lists test: ../test/images without the folder: Ultralytics trains on it; the
    check reports the missing split (a warning for test, an error for train / val) and checks the others."""
    yolo = copy_of("yolo")
    data = yaml.safe_load((yolo / "data.yaml").read_text())
    (yolo / "data.yaml").write_text(yaml.safe_dump({**data, "test": "../test/images"}))
    code, out, err = _main(tool, capsys, yolo / "data.yaml", "--no-images")
    assert code == 0 and "Traceback" not in err, out + err
    assert out.count("Summary of") == 3 and "split train (images in" in out and "split val (images in" in out
    assert "WARNING [unreadable_split] split test not checked:" in out and "test: ../test/images not found" in out
    code, out, err = _main(tool, capsys, yolo / "data.yaml", "--split", "test")  # named: the one-line mistake
    assert code == 2 and "test: ../test/images not found" in err and "Summary of" not in out
    shutil.rmtree(yolo / "images" / "train")  # training refuses it: an error, exit 1, val still checked
    code, out, err = _main(tool, capsys, yolo / "data.yaml", "--no-images")
    assert code == 1 and "ERROR [unreadable_split] split train not checked:" in out, out + err
    val = next(r for r in check_yolo(yolo / "data.yaml", read_images=False) if r.split == "split val")
    assert val.errors == [] and val.summary["images"] > 0
