"""tools/explain.py: overlays, heatmaps and explanations.json for a folder; the pointing game with --gt; every
mistake of input is one line and exit status 2."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import detkit
from detkit.cli.explain import main
from detkit.config import load_config
from detkit.data.synthetic import render_image

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny YOLO with random weights (every score ~1e-4: the tests explain with --score-thr 0)."""
    torch.manual_seed(0)
    small = "model.backbone={type: CSPDarknet, depth_multiple: 0.33, width_multiple: 0.125}"
    cfg = load_config("yolo_n_shapes", [small, "data.val.pipeline=[{type: LetterBox, size: 128}]"])
    names = ["a", "b"]
    path = tmp_path_factory.mktemp("ckpt") / "yolo.pth"
    torch.save(
        {"model": detkit.build_model(cfg, class_names=names).state_dict(), "meta": dict(config=cfg, class_names=names)},
        path,
    )
    return path


def _gt(path, names, categories=("a", "b")):
    """A COCO json with one object per image, ``names`` (h, w = 96, 128)."""
    images = [{"id": i + 1, "file_name": n, "height": 96, "width": 128} for i, n in enumerate(names)]
    anns = [
        {"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [20, 10, 50, 40], "area": 2000, "iscrowd": 0}
        for i in range(len(names))
    ]
    cats = [{"id": i + 1, "name": c} for i, c in enumerate(categories)]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    src = tmp_path_factory.mktemp("in")
    (src / "sub").mkdir()
    for i, name in enumerate(("a.png", "sub/b.jpg")):
        cv2.imwrite(str(src / name), render_image(np.random.default_rng(i), (96, 128))[0])
    (src / "broken.png").write_bytes(b"\x89PNG not an image")
    return src


def test_folder_outputs_and_pointing_game(checkpoint, folder, tmp_path):
    gt = _gt(tmp_path / "gt.json", ["a.png", "b.jpg"])
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools/explain.py"), "-", str(checkpoint), str(folder), "--out-dir", str(out)]
        + ["--method", "hirescam", "--max-dets", "2", "--score-thr", "0", "--gt", str(gt), "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.npy", "a.png", "b.npy", "b.png", "explanations.json"]
    for stem in ("a", "b"):
        heat = np.load(out / f"{stem}.npy")
        assert heat.dtype == np.float32 and heat.shape == (2, 96, 128)
        assert heat.min() >= 0 and heat.max() <= 1
        assert cv2.imread(str(out / f"{stem}.png")).shape == (96, 128, 3)
    meta = json.loads((out / "explanations.json").read_text())
    assert meta["method"] == "hirescam" and meta["target_layer"] == "neck"
    first = meta["images"][0]["maps"][0]
    assert first["class_name"] in ("a", "b") and len(first["box"]) == 4 and 0 <= first["score"] <= 1
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith(
        "2 images explained, 1 unreadable skipped, 4 heatmaps (hirescam at layer neck; at most 2"
    )
    assert lines[1].startswith("pointing game (hirescam at layer neck, 2 ground-truth objects in 2 images): trained ")
    assert "randomised weights (seed 0)" in lines[1]
    assert "skipped unreadable input" in proc.stderr and "broken.png" in proc.stderr


def _one_line_error(capsys, args, expected):
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # a usage mistake, from argparse
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert expected in err, err
    return err


def test_mistakes_exit_2(checkpoint, folder, tmp_path, capsys):
    ck, out = checkpoint, tmp_path / "out"
    image = folder / "a.png"
    before = image.read_bytes()
    err = _one_line_error(capsys, ["-", ck, image, "--out-dir", out, "--target-layer", "neck.bottomup.1"], "nearest")
    assert "is not a layer of this OneStageDetector; valid layers, nearest first: neck.bottom_up.1," in err
    _one_line_error(capsys, ["-", ck, image, "--out-dir", out, "--method", "scorecam"], "invalid choice")
    _one_line_error(capsys, ["-", ck, image, "--out-dir", out, "--max-dets", "0"], "--max-dets must be >= 1")
    _one_line_error(capsys, ["-", ck, image], "--out-dir")
    _one_line_error(capsys, ["-", ck, tmp_path / "missing.png", "--out-dir", out], "no such file")
    _one_line_error(capsys, ["-", ck, image, "--out-dir", image], "is a file, not a folder")
    _one_line_error(capsys, ["-", tmp_path / "none.pth", image, "--out-dir", out], "checkpoint not found")
    _one_line_error(capsys, ["-", ck, image, "--out-dir", out, "--gt", tmp_path / "no.json"], "--gt ANN_FILE not found")
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00" * 64)
    _one_line_error(capsys, ["-", ck, video, "--out-dir", out], "no image among")

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    _one_line_error(capsys, ["-", ck, image, "--out-dir", out, "--gt", bad], "not valid JSON")
    other = _gt(tmp_path / "other.json", ["zzz.png"])
    _one_line_error(capsys, ["-", ck, image, "--out-dir", out, "--gt", other], "none of the 1 input image(s) is in it")
    three = _gt(tmp_path / "three.json", ["a.png"], ("a", "b", "c"))
    _one_line_error(capsys, ["-", ck, image, "--out-dir", out, "--gt", three], "has 2 classes")
    assert image.read_bytes() == before


def test_gt_in_out_dir_is_refused_before_anything_runs(checkpoint, folder, tmp_path, capsys):
    """A --gt named explanations.json in --out-dir would be replaced by the tool's explanations.json; a --gt
    elsewhere in --out-dir is refused as any input there is."""
    out = tmp_path / "out"
    out.mkdir()
    gt = _gt(out / "explanations.json", ["a.png"])
    before = gt.read_bytes()
    args = ["-", checkpoint, folder / "a.png", "--out-dir", out, "--score-thr", "0", "--device", "cpu"]
    err = _one_line_error(capsys, [*args, "--gt", gt], f"the output {gt} would replace --gt {gt}")
    assert err.endswith("choose another --out-dir")
    assert gt.read_bytes() == before and [p.name for p in out.iterdir()] == ["explanations.json"]
    gt.rename(out / "gt.json")
    _one_line_error(capsys, [*args, "--gt", out / "gt.json"], f"holds the input {out / 'gt.json'}")
    assert [p.name for p in out.iterdir()] == ["gt.json"]


def test_inputs_with_one_name_get_their_own_outputs(checkpoint, folder, tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    copy = tmp_path / "sub" / "a.png"
    copy.write_bytes((folder / "a.png").read_bytes())
    out = tmp_path / "out"
    args = ["-", checkpoint, folder / "a.png", copy, folder / "a.png", "--out-dir", out, "--device", "cpu"]
    assert main([str(a) for a in [*args, "--score-thr", "0", "--max-dets", "1"]]) == 0
    stems = ("a", "a_2", "a_3")
    assert {p.name for p in out.iterdir()} == {f"{s}.{e}" for s in stems for e in ("png", "npy")} | {
        "explanations.json"
    }
    meta = json.loads((out / "explanations.json").read_text())
    assert [(r["file"], r["png"]) for r in meta["images"]] == [
        (str(p), f"{s}.png") for p, s in zip((folder / "a.png", copy, folder / "a.png"), stems)
    ]
    assert "3 images explained" in capsys.readouterr().out


def test_failed_run_leaves_no_empty_out_dir(checkpoint, folder, tmp_path, capsys):
    """An unknown --target-layer is found once the model runs: the --out-dir made by this run goes again."""
    out = tmp_path / "new" / "cam"
    _one_line_error(capsys, ["-", checkpoint, folder / "a.png", "--out-dir", out, "--target-layer", "x.y"], "nearest")
    assert not out.exists() and not out.parent.exists()
    kept = tmp_path / "kept"
    (kept / "cam").mkdir(parents=True)
    (kept / "note.txt").write_text("mine")
    _one_line_error(capsys, ["-", checkpoint, folder / "a.png", "--out-dir", kept / "cam", "--target-layer", "x"], "")
    assert (kept / "cam").is_dir()  # there before the run: kept


def test_classifier_overlays_and_summary(folder, tmp_path, capsys):
    """A 32 px classifier: a small image's overlay is enlarged (as infer draws classes), the summary speaks of
    classes, and the default layer is one whose map is at least 4x4."""
    torch.manual_seed(0)
    cfg = load_config("resnet18_shapes", ["data.val.pipeline=[{type: Resize, height: 32, width: 32}]"])
    names = ["a", "b", "c"]
    ck = tmp_path / "cls.pth"
    model = detkit.build_model(cfg, class_names=names)
    torch.save({"model": model.state_dict(), "meta": dict(config=cfg, class_names=names)}, ck)
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), cv2.resize(render_image(np.random.default_rng(3), (96, 128))[0], (60, 20)))
    assert main(["-", str(ck), str(small), "--out-dir", str(tmp_path / "cam"), "--method", "gradcam"]) == 0
    out = capsys.readouterr().out
    assert "the top classes" in out and "detections" not in out and "threshold" not in out, out
    assert "at layer backbone.layer2" in out, out
    overlay = cv2.imread(str(tmp_path / "cam" / "small.png"))
    assert overlay.shape[:2] == (192, 576)
    assert np.load(tmp_path / "cam" / "small.npy").shape[1:] == (20, 60)  # the maps keep the image's size


def test_files_of_the_users_in_the_out_dir_are_never_written_over(checkpoint, folder, tmp_path, capsys):
    """An --out-dir holding the user's own a.png (another folder of images): refused; explain's own outputs of an
    earlier run are written over."""
    mine = tmp_path / "train_images"
    mine.mkdir()
    (mine / "a.png").write_bytes(b"a training image")
    err = _one_line_error(capsys, ["-", checkpoint, folder / "a.png", "--out-dir", mine], "holds a.png")
    assert "this run would replace" in err and (mine / "a.png").read_bytes() == b"a training image"
    out = tmp_path / "out"
    for _ in range(2):
        assert main(["-", str(checkpoint), str(folder / "a.png"), "--out-dir", str(out), "--device", "cpu"]) == 0
    assert (out / "a.png").is_file() and (out / "a.npy").is_file()
