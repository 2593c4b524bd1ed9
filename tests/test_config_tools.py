"""A config mistake reaches the user of a tool as one line naming the key and the file, exit status 2 (the tools
run by their main in this process: tool_in_process, tests/conftest.py)."""

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FASTER = ROOT / "detkit" / "configs" / "faster_rcnn" / "faster_rcnn_r18_fpn_shapes.yaml"


@pytest.fixture
def user_files(tmp_path):
    """A user's config that inherits a shipped config and a base file of their own, and an (empty) checkpoint."""
    (tmp_path / "base.yaml").write_text("data:\n  num_worker: 1   # typo\n")
    (tmp_path / "exp.yaml").write_text(f"_base_: [{FASTER}, base.yaml]\ntrain:\n  max_epochs: 1.5\n")
    torch.save({"model": {}, "meta": {}}, tmp_path / "model.pth")  # a readable checkpoint: the config is at fault
    return tmp_path


@pytest.mark.parametrize(
    "tool, extra, expected",
    [
        (
            "train",
            ["--work-dir", "w", "--device", "cpu"],
            ["base.yaml: unknown key 'data.num_worker'", "data.num_workers"],
        ),
        ("train", ["--work-dir", "w", "--set", "+train.max_epoch=3"], ["--set: unknown key 'train.max_epoch'"]),
        ("eval", ["model.pth", "--set", "model.box_head.score_thresh=0.1"], ["write 'model.box_head.score_thr'"]),
        ("eval", ["model.pth"], ["exp.yaml: train.max_epochs must be an integer >= 1, got 1.5"]),
    ],
)
def test_tool_reports_config_mistake_in_one_line(user_files, tool, extra, expected, tool_in_process):
    before = {p.name: p.read_bytes() for p in user_files.iterdir()}
    out = tool_in_process(tool, ["exp.yaml", *extra], cwd=user_files)
    err = out.stderr.strip()
    assert out.returncode == 2, err
    assert "Traceback" not in out.stderr + out.stdout
    assert err.startswith(f"{tool}: error: ") and "\n" not in err
    for text in expected:
        assert text in err
    assert {p.name: p.read_bytes() for p in user_files.iterdir()} == before  # nothing written, nothing changed
