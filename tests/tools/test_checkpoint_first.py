"""A checkpoint given where CONFIG goes: infer, eval and export say so on one line, with the exact command that
uses the config stored in the checkpoint ('-'), instead of argparse's "the following arguments are required"."""

from __future__ import annotations

import pytest
import torch
import yaml

from detkit.cli.checkpoint_first import checkpoint_first


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"model": {}, "meta": {}}, tmp_path / "best.pth")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"model": {"type": "X"}}))
    return tmp_path


HINT = "best.pth is a checkpoint: give the config first, or '-' to use the one stored in it: "


@pytest.mark.parametrize(
    "tool,args,command",
    [
        ("infer", ["best.pth", "images"], "detkit infer - best.pth images"),
        ("infer", ["best.pth"], "detkit infer - best.pth IMAGES..."),
        (
            "infer",
            ["best.pth", "images", "images/a.png", "--device", "cpu"],
            "detkit infer - best.pth images images/a.png --device cpu",
        ),
        ("infer", ["--out-dir", "o", "best.pth", "images"], "detkit infer --out-dir o - best.pth images"),
        ("eval", ["best.pth"], "detkit eval - best.pth"),
        (
            "eval",
            ["best.pth", "--set", "data.val.ann_file=v.json"],
            "detkit eval - best.pth --set data.val.ann_file=v.json",
        ),
        ("export", ["best.pth", "--out", "a.onnx"], "detkit export - best.pth --out a.onnx"),
        ("export", ["--out", "a.onnx", "best.pth"], "detkit export --out a.onnx - best.pth"),
        ("export", ["best.pth"], "detkit export - best.pth"),  # --out missing too: the checkpoint first
    ],
)
def test_checkpoint_given_first_is_named_with_the_command(files, tool, args, command, tool_in_process):
    run = tool_in_process("detkit", [tool, *args])
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr == f"detkit {tool}: error: {HINT}{command} (see --help)\n"


def test_started_as_a_script_the_command_is_the_script(files, tool_in_process):
    run = tool_in_process("infer", ["best.pth", "images"])
    assert run.returncode == 2 and f"{HINT}python tools/infer.py - best.pth images (see --help)" in run.stderr


def test_other_mistakes_keep_their_own_messages(files, tool_in_process):
    run = tool_in_process("detkit", ["eval", "best.pth", "config.yaml"])  # swapped: said as such
    assert run.returncode == 2 and "the arguments are swapped" in run.stderr and "is a checkpoint:" not in run.stderr
    run = tool_in_process("detkit", ["infer", "config.yaml", "best.pth"])  # no inputs: argparse's own words
    assert run.returncode == 2 and "the following arguments are required: inputs" in run.stderr
    run = tool_in_process("detkit", ["eval", "missing.pth"])  # not a file: not judged a checkpoint
    assert run.returncode == 2 and "required: checkpoint" in run.stderr
    run = tool_in_process("detkit", ["infer", "best.pth", "--help"])
    assert run.returncode == 0 and "usage:" in run.stdout
    run = tool_in_process("detkit", ["infer", "-", "best.pth", "images", "--batch-size", "x"])  # a bad option value
    assert run.returncode == 2 and "invalid int value: 'x'" in run.stderr


def test_infer_inputs_after_set_are_named(files, tool_in_process):
    run = tool_in_process("detkit", ["infer", "-", "best.pth", "--set", "model.head.nms_thr=0.5", "images"])
    assert run.returncode == 2
    assert "--set takes KEY=VALUE words, and 'images' is not one: give CONFIG CHECKPOINT INPUT... before --set" in (
        run.stderr
    )


def test_a_long_command_is_cut_after_the_checkpoint(files):
    argv = ["best.pth", *(f"images/{i:06d}.png" for i in range(100))]
    message = checkpoint_first("infer", argv, argv, inputs="IMAGES...")
    assert message.endswith("python tools/infer.py - best.pth ... (the rest as given)")
    assert checkpoint_first("eval", ["best.pth", "images"], ["best.pth", "images"]) is None  # eval takes no inputs
