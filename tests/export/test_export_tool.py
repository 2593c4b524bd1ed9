"""tools/export.py as a user runs it: Mask R-CNN exported and verified; every mistake of input is one line, exit 2."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[2]


def _export(*args, timeout=600):
    cmd = [sys.executable, str(ROOT / "tools/export.py"), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def checkpoint(mask_rcnn, tmp_path_factory):
    """A tiny Mask R-CNN checkpoint with its config (validation images: none, so --verify draws shapes)."""
    cfg = dict(mask_rcnn.cfg, data={**mask_rcnn.cfg["data"], "val": {**mask_rcnn.cfg["data"]["val"], "img_dir": ""}})
    path = tmp_path_factory.mktemp("ckpt") / "model.pth"
    torch.save({"model": mask_rcnn.state_dict(), "meta": {"config": cfg, "class_names": mask_rcnn.class_names}}, path)
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_mask_rcnn_export_and_verify(checkpoint, tmp_path):
    out = tmp_path / "mask_rcnn.onnx"
    proc = _export("-", checkpoint, "--format", "onnx", "--out", out, "--verify", "--image-size", "128,128")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "masks" in proc.stdout and "dynamic batch and image size" in proc.stdout
    verdict = proc.stdout.strip().splitlines()[-1]
    assert "mask IoU mean" in verdict and verdict.endswith(": OK"), verdict
    assert out.is_file() and not list(tmp_path.glob(".*tmp"))


def _mistakes(tmp_path: Path, checkpoint: Path) -> list[tuple[list, str]]:
    """(arguments, what the message must name) for each mistake."""
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    config = ROOT / "configs/mask_rcnn/mask_rcnn_r18_fpn_shapes.yaml"
    out = tmp_path / "m.onnx"
    return [
        (["-", text, "--out", out], str(text)),  # a text file as checkpoint
        (["-", empty, "--out", out], str(empty)),  # an empty checkpoint
        (["-", tmp_path / "missing.pth", "--out", out], "missing.pth"),
        ([tmp_path / "nope.yaml", checkpoint, "--out", out], "nope.yaml"),  # a missing config
        ([checkpoint, config, "--out", out], "swapped"),  # CONFIG and CHECKPOINT swapped
        (["-", checkpoint, "--out", text / "m.onnx"], str(text)),  # --out under a file: cannot be written
        (["-", checkpoint, "--out", tmp_path], str(tmp_path)),  # --out is a folder
        (["-", checkpoint, "--format", "tflite", "--out", out], "tflite"),
        (["-", checkpoint, "--out", out, "--no-nms"], "nms"),  # an option of YOLO models only
    ]


def test_mistakes_are_one_line_and_exit_2(checkpoint, tmp_path, tool_in_process):
    before = _digest(checkpoint)
    for args, named in _mistakes(tmp_path, checkpoint):
        proc = tool_in_process("export", args, ROOT)
        err = proc.stderr.strip()
        assert proc.returncode == 2, (args, proc.stdout, err)
        assert "Traceback" not in err + proc.stdout and named in err, (args, err)
        assert err.startswith("export") and len(err.splitlines()) <= 2, err
    assert _digest(checkpoint) == before and not (tmp_path / "m.onnx").exists()
