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
