"""`detkit export` of a semantic segmentor, verified; --verify says so when it falls back to synthetic images."""

from pathlib import Path

import cv2
import pytest
import torch

from detkit.cli.export import val_image_files

pytest.importorskip("onnxruntime")

STATIC = ["--static", "--image-size", "256,256"]  # every synthetic image fits after the short side 160 resize


@pytest.fixture(scope="module")
def sem_checkpoint(semantic, tmp_path_factory):
    """A tiny Semantic FPN checkpoint whose stored config reads data.val from data/shapes/val (relative)."""
    assert semantic.cfg["data"]["val"]["img_dir"] == "data/shapes/val"
    path = tmp_path_factory.mktemp("sem") / "model.pth"
    torch.save(
        {"model": semantic.state_dict(), "meta": {"config": semantic.cfg, "class_names": semantic.class_names}}, path
    )
    return path


def test_export_from_another_folder_says_it_verified_on_synthetic_images(tool_in_process, sem_checkpoint, tmp_path):
    out = tmp_path / "semfpn.onnx"
    res = tool_in_process("export", ["-", sem_checkpoint, "--out", out, "--verify", *STATIC], tmp_path)
    assert res.returncode == 0, res
    assert "exported Segmentor (labels, logits)" in res.stdout and out.is_file()
    verdict = res.stdout.strip().splitlines()[-1]
    assert verdict.startswith("verify on 4 images: labels equal on") and verdict.endswith(": OK"), verdict
    note = res.stderr.strip().splitlines()
    assert len(note) == 1 and note[0].startswith("export: WARNING: --verify found no validation image"), res.stderr
    folder = f"relative paths are read from the current folder {tmp_path}"
    tried = f"(data.val.img_dir data/shapes/val is not a folder ({folder}))"
    assert tried in note[0], note[0]
    assert "verifying on 4 synthetic shapes images instead" in note[0] and "--verify-images" in note[0]


def test_export_beside_the_data_verifies_on_it_without_a_warning(tool_in_process, sem_checkpoint, shapes, tmp_path):
    val = tmp_path / "data/shapes/val"
    val.mkdir(parents=True)
    for i, image in enumerate(shapes([(160, 160), (160, 224)])):
        cv2.imwrite(str(val / f"{i}.png"), image[:, :, ::-1])
    res = tool_in_process("export", ["-", sem_checkpoint, "--out", tmp_path / "m.onnx", "--verify", *STATIC], tmp_path)
    assert res.returncode == 0 and "WARNING" not in res.stderr, res
    assert res.stdout.strip().splitlines()[-1].startswith("verify on 2 images: labels equal on")


def test_val_image_files_says_what_it_tried(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert val_image_files({"data": {"train": {}}}) == ([], "the config names no data.val.img_dir")
    cfg = {"data": {"val": {"img_dir": "images"}}}
    cwd = Path.cwd()
    assert val_image_files(cfg) == (
        [],
        f"data.val.img_dir images is not a folder (relative paths are read from the current folder {cwd})",
    )
    (tmp_path / "images").mkdir()
    (tmp_path / "images/notes.txt").write_text("not an image\n")
    assert val_image_files(cfg) == ([], "data.val.img_dir images holds no image (.jpg, .jpeg, .png, .bmp)")
    absolute = {"data": {"val": {"img_dir": str(tmp_path / "missing")}}}
    assert val_image_files(absolute)[1] == f"data.val.img_dir {tmp_path / 'missing'} is not a folder"
    for name in ("cat/1.png", "cat/2.png", "dog/1.jpg"):  # class folders: found below them
        (tmp_path / "images" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "images" / name).write_bytes(b"")
    files, tried = val_image_files(cfg, count=2)
    assert [f.as_posix() for f in files] == ["images/cat/1.png", "images/cat/2.png"] and tried == ""


def test_upernet_sizes_it_cannot_export_are_one_line(tool_in_process, make_semfpn, tmp_path):
    """UPerNet: no dynamic graph, and a static one only where its pyramid pooling divides the map: exit 2, one line
    that says which --image-size works; nothing written."""
    model = make_semfpn(["model.neck=null", "model.decode_head={type: UPerHead, channels: 16}"])
    checkpoint = tmp_path / "uper.pth"
    torch.save(
        {"model": model.state_dict(), "meta": {"config": model.cfg, "class_names": model.class_names}}, checkpoint
    )
    out = tmp_path / "uper.onnx"
    for extra, named in (([], "adaptive average pooling to [2, 3, 6]"), (["--static"], "sides multiple of 192")):
        res = tool_in_process("export", ["-", checkpoint, "--out", out, *extra], tmp_path)
        err = res.stderr.strip()
        assert res.returncode == 2 and len(err.splitlines()) == 1 and named in err and "Traceback" not in err, res
        assert "--static" in err or "--image-size" in err
    assert not out.exists()
    res = tool_in_process("export", ["-", checkpoint, "--out", out, "--static", "--image-size", "192,192"], tmp_path)
    assert res.returncode == 0 and out.is_file(), res
