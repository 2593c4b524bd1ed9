"""`detkit check` names itself as the user ran it: `detkit check ...`, or `python tools/check_dataset.py ...`
from a checkout; never the bare module name, nor a tools/ script that a pip-installed user does not have."""

from __future__ import annotations

import sys

import pytest

from detkit.cli import check_dataset as tool


def _run(monkeypatch, capsys, argv0: str, *args) -> tuple[int, str]:
    """(exit status, the one stderr line) of the tool's main run as ``argv0 ARGS``."""
    monkeypatch.setattr(sys, "argv", [argv0, *map(str, args)])
    with pytest.raises(SystemExit) as info:
        tool.main([str(a) for a in args])
    (line,) = capsys.readouterr().err.strip().splitlines()
    label = "detkit check" if argv0.startswith("detkit") else "check_dataset"  # the command typed, else the module
    assert line.startswith(f"{label}: error: ") and "Traceback" not in line, line
    return info.value.code, line


@pytest.mark.parametrize(
    ("argv0", "want"),
    [
        ("detkit check", "detkit check"),
        ("/usr/lib/python3/site-packages/detkit/cli/check_dataset.py", "detkit check"),  # python -m
        ("tools/check_dataset.py", "python tools/check_dataset.py"),
    ],
)
def test_command_follows_how_the_tool_was_run(argv0, want):
    assert tool.command(argv0) == want


@pytest.mark.parametrize(
    ("argv0", "want"), [("detkit check", "detkit check"), ("tools/check_dataset.py", "python tools/check_dataset.py")]
)
def test_swapped_arguments_give_the_command_to_run(coco_files, monkeypatch, capsys, argv0, want):
    ann, img = coco_files.ann_file, coco_files.img_dir
    code, line = _run(monkeypatch, capsys, argv0, img, ann)
    assert code == 2 and "swapped" in line and line.endswith(f": {want} {ann} {img}"), line


def test_library_hint_names_detkit_check(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("model: {}\ndata: {}\n")  # a detkit config given as a YOLO data.yaml
    code, line = _run(monkeypatch, capsys, "detkit check", cfg)
    assert code == 2 and f"detkit check --config {cfg}" in line and "tools/check_dataset.py" not in line, line


def test_voc_folders_hint_names_detkit_check(tmp_path, monkeypatch, capsys):
    (tmp_path / "VOCdevkit" / "VOC2007" / "Annotations").mkdir(parents=True)
    code, line = _run(monkeypatch, capsys, "detkit check", tmp_path / "VOCdevkit")
    assert code == 2 and line.endswith(f"give one of them: detkit check {tmp_path / 'VOCdevkit' / 'VOC2007'}"), line
