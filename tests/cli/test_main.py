"""The `detkit` command: dispatch to every tool, --help of each, unknown commands, `detkit configs`."""

from __future__ import annotations

import sys

import pytest

from detkit.cli import configs as configs_cmd
from detkit.cli import main as cli
from detkit.config import packaged_configs


@pytest.fixture(autouse=True)
def _keep_argv0(monkeypatch):
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # main() renames argv[0] to "detkit CMD"


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in cli.COMMANDS)


def test_no_command_is_a_usage_error(capsys):
    assert cli.main([]) == 2 and "usage: detkit COMMAND" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_every_command_imports_and_prints_its_flags(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: detkit {name} ") and "-h, --help" in out  # prog from argv[0], not a file name


def test_unknown_command_names_the_nearest(capsys):
    assert cli.main(["trian", "x.yaml"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'trian'" in err and "did you mean 'train'" in err


def test_version(capsys):
    import detkit

    assert cli.main(["--version"]) == 0 and capsys.readouterr().out.strip() == f"detkit {detkit.__version__}"


def test_configs_lists_the_packaged_configs_by_name(capsys):
    found = packaged_configs()
    assert {"yolo_n_shapes", "faster_rcnn_r18_fpn_shapes", "mask_rcnn_r50_fpn_1x_coco"} <= set(found)
    assert not any(name.startswith("_") for name in found)  # the _base_ files are parts, not configs
    assert all(path.is_file() and path.suffix == ".yaml" for path in found.values())
    assert cli.main(["configs", "yolo_n"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = [line.split() for line in lines]
    assert sorted(name for name, _ in listed) == sorted(n for n in found if "yolo_n" in n)
    assert all(path == str(found[name]) for name, path in listed)
    assert configs_cmd.main(["no-such-config"]) == 2
    assert "no packaged config matches 'no-such-config'" in capsys.readouterr().err


def test_messages_and_help_name_the_detkit_commands_when_run_through_detkit(monkeypatch):
    """A pip install has no tools/ folder: run as `detkit X`, text naming `python tools/X.py` says `detkit X`."""
    from detkit.cli.errors import ArgumentParser, as_invoked

    text = "run python tools/infer.py CFG CKPT, then tools/check_dataset.py A B or /src/tools/make_shapes.py out"
    monkeypatch.setattr("sys.argv", ["tools/infer.py"])
    assert as_invoked(text) == text  # from a checkout: as written
    monkeypatch.setattr("sys.argv", ["detkit analyze"])
    assert as_invoked(text) == "run detkit infer CFG CKPT, then detkit check A B or detkit make-shapes out"
    parser = ArgumentParser(description="Usage: python tools/browse_dataset.py CONFIG")
    assert "detkit browse CONFIG" in parser.format_help()


def test_error_and_warning_lines_start_with_the_command_the_user_typed(monkeypatch, capsys):
    """`detkit check` reports `detkit check: error: ...`, not its module's name `check_dataset: error: ...`."""
    import warnings

    from detkit.cli.errors import UserError, loud_warnings, run_tool, tool_label

    def fail():
        warnings.warn("categories differ", UserWarning, stacklevel=1)
        raise UserError("no such file")

    monkeypatch.setattr("sys.argv", ["tools/check_dataset.py"])
    assert run_tool("check_dataset", fail) == 2
    assert capsys.readouterr().err.splitlines() == [
        "check_dataset: WARNING: categories differ",
        "check_dataset: error: no such file",
    ]
    monkeypatch.setattr("sys.argv", ["detkit check"])
    assert run_tool("check_dataset", fail) == 2
    assert capsys.readouterr().err.splitlines() == [
        "detkit check: WARNING: categories differ",
        "detkit check: error: no such file",
    ]
    assert tool_label("convert coco2yolo") == "detkit convert coco2yolo"
    assert tool_label("model_stats") == "detkit model-stats"
    assert tool_label("train") == "detkit train"
    with loud_warnings("eval_tiling"):
        warnings.warn("x", UserWarning, stacklevel=1)
    assert capsys.readouterr().err == "detkit eval-tiling: WARNING: x\n"


@pytest.mark.parametrize(
    "given, command",
    [
        ("check-dataset", "check"),
        ("check_dataset", "check"),
        ("tools/check_dataset.py", "check"),
        ("convert_weights", "convert-weights"),
        ("make_shapes", "make-shapes"),
        ("model_stats.py", "model-stats"),
        ("eval_tiling", "eval-tiling"),
    ],
)
def test_a_tool_files_name_as_the_command_names_the_detkit_command(given, command, capsys):
    assert cli.main([given, "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"detkit: error: unknown command '{given}'; tools/") and f"is `detkit {command}`" in err
    assert "\n" not in err


def test_a_reader_that_closes_stdout_ends_every_command_quietly(tmp_path):
    """``detkit configs | head -1`` (a command outside run_tool, as check and convert): no BrokenPipeError traceback,
    no "Exception ignored" at exit; exit status 1 (the output was cut), as Python's recipe for a closed pipe."""
    import os
    import shlex
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [sys.executable, "-m", "detkit.cli.main", "configs"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    proc.stdout.close()  # the reader gone before the first line is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1 and "BrokenPipe" not in err and "Exception ignored" not in err, err
    line = f'{shlex.join(command)} | head -1; echo "status ${{PIPESTATUS[0]}}" >&2'
    piped = subprocess.run(["bash", "-c", line], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert len(piped.stdout.splitlines()) == 1 and "Traceback" not in piped.stderr, piped.stderr
    assert piped.stderr.strip().splitlines()[-1] in ("status 0", "status 1"), piped.stderr
