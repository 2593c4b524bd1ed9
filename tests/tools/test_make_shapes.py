"""Command-line tests of tools/make_shapes.py."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "make_shapes.py"


def _tool():
    if str(TOOL.parent) not in sys.path:  # the tool imports tools/_bootstrap.py, as `python tools/...` finds it
        sys.path.insert(0, str(TOOL.parent))
    spec = importlib.util.spec_from_file_location("make_shapes_tool", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_script_runs_with_default_out_dir(tmp_path):
    """``python tools/make_shapes.py`` works from any folder and writes data/shapes by default."""
    r = subprocess.run(
        [sys.executable, str(TOOL), "--num-train", "2", "--num-val", "1", "--size", "32"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "data" / "shapes" / "train.json").is_file()
    assert (tmp_path / "data" / "shapes" / "val.json").is_file()
    assert "train: 2 images" in r.stdout


def test_writes_dataset_and_summary(tmp_path, capsys):
    out = tmp_path / "shapes"
    assert _tool().main([str(out), "--num-train", "10", "--num-val", "3", "--seed", "1", "--size", "64,80"]) == 0
    stdout = capsys.readouterr().out
    assert "train: 10 images (1 empty)" in stdout and "val: 3 images (0 empty)" in stdout
    train = json.loads((out / "train.json").read_text())
    assert {(i["height"], i["width"]) for i in train["images"]} == {(64, 80)}
    assert len(list((out / "train").glob("*.png"))) == 10
    assert len(list((out / "sem" / "val").glob("*.png"))) == 3
    assert train["info"]["seed"] == 1


@pytest.mark.parametrize("args", [["--size", "16,16"], ["--num-train", "-3"], ["--size", "abc"]])
def test_bad_arguments_one_line_exit_2(tmp_path, capsys, args):
    with pytest.raises(SystemExit) as e:
        _tool().main([str(tmp_path / "x"), *args])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "error" in err
    assert not (tmp_path / "x").exists()


def test_classify_writes_class_folders_and_summary(tmp_path, capsys):
    out = tmp_path / "cls"
    assert _tool().main([str(out), "--task", "classify", "--num-train", "3", "--num-val", "2", "--size", "24"]) == 0
    stdout = capsys.readouterr().out
    assert "4 classes: circle, rectangle, triangle, star" in stdout and "train: 12 images, 3 per class" in stdout
    assert sorted(p.name for p in (out / "train").iterdir()) == ["circle", "rectangle", "star", "triangle"]
    assert len(list((out / "val" / "star").glob("*.png"))) == 2
    import cv2

    image = cv2.imread(str(out / "train" / "circle" / "000001.png"), cv2.IMREAD_UNCHANGED)
    assert image.shape == (24, 24, 3)
    before = (out / "train" / "circle" / "000001.png").read_bytes()
    assert _tool().main([str(out), "--task", "classify", "--num-train", "1", "--num-val", "2", "--size", "24"]) == 0
    assert [p.name for p in (out / "train" / "circle").iterdir()] == ["000001.png"]  # rewritten, stale removed
    assert (out / "train" / "circle" / "000001.png").read_bytes() == before  # same seed, same bytes


def test_classify_grey_and_colour_variants(tmp_path, capsys):
    import cv2

    grey = tmp_path / "grey"
    assert _tool().main([str(grey), "--task", "classify", "--num-train", "1", "--num-val", "0", "--grey"]) == 0
    assert cv2.imread(str(grey / "train" / "star" / "000001.png"), cv2.IMREAD_UNCHANGED).shape == (32, 32)
    colour = tmp_path / "colour"
    args = [str(colour), "--task", "classify", "--num-train", "1", "--num-val", "1", "--variant", "shape_colour"]
    assert _tool().main(args) == 0
    assert len(list((colour / "train").iterdir())) == 12 and "12 classes" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "classify", "--size", "16,20"], "square images"),
        (["--grey"], "options of --task classify"),
        (["--task", "classify", "--grey", "--variant", "shape_colour"], "use --variant shape"),
        (["--size", "16"], "at least 32 px"),
    ],
)
def test_classify_usage_mistakes_one_line_exit_2(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as e:
        _tool().main([str(tmp_path / "x"), *args])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not (tmp_path / "x").exists()


def test_classify_never_mixes_with_other_data(tmp_path, capsys):
    tool = _tool()
    out = tmp_path / "cls"
    assert tool.main([str(out), "--task", "classify", "--num-train", "1", "--num-val", "1", "--size", "16"]) == 0
    snapshot = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    cases = [
        ([str(out), "--task", "classify", "--variant", "shape_colour"], "holds the --variant shape data"),
        ([str(out)], "holds folders"),  # detection data into class folders
    ]
    (tmp_path / "det").mkdir()
    (tmp_path / "det" / "train.json").write_text("{}")
    cases.append(([str(tmp_path / "det"), "--task", "classify"], "holds train.json"))
    for args, message in cases:
        assert tool.main(args) == 2
        assert message in capsys.readouterr().err
    (out / "train" / "circle" / "notes.txt").write_text("mine")
    assert tool.main([str(out), "--task", "classify", "--size", "16"]) == 2
    assert "notes.txt is not an image or class folder" in capsys.readouterr().err
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == sorted([*snapshot, "train/circle/notes.txt"])


def test_a_refused_out_dir_suggests_another_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "shapes").mkdir(parents=True)
    (tmp_path / "data" / "shapes" / "train.json").write_text('{"images": []}')  # the user's own data
    rc = _tool().main(["data/shapes"])
    err = capsys.readouterr().err
    assert rc == 2 and "(e.g. data/shapes_2)" in err, err
    assert (tmp_path / "data" / "shapes" / "train.json").read_text() == '{"images": []}'
