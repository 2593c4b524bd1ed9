"""Tiles on the command line: ``detkit eval --tile``, infer's answers to SAHI / Ultralytics option names, the
hint to tile an image far larger than the tiles a model trained on, eval-tiling's class check."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from detkit.config import dump_config, load_config
from detkit.models import build_model

NAMES = ["blob", "other"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A 400x300 image with two rectangles (COCO json), a tiny YOLO trained (not really) on 64 px tiles of it."""
    root = tmp_path_factory.mktemp("tiles_cli")
    (root / "img").mkdir()
    img = np.zeros((300, 400, 3), np.uint8)
    img[40:80, 50:120] = 255
    img[150:260, 200:330] = 255
    cv2.imwrite(str(root / "img" / "big.png"), img)
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [50, 40, 70, 40], "area": 2800, "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [200, 150, 130, 110], "area": 14300, "iscrowd": 0},
    ]
    gt = {
        "images": [{"id": 1, "file_name": "big.png", "height": 300, "width": 400}],
        "annotations": anns,
        "categories": [{"id": 1, "name": "blob"}, {"id": 2, "name": "other"}],
    }
    (root / "val.json").write_text(json.dumps(gt))
    plain = f"{{type: CocoDataset, ann_file: {root / 'val.json'}, img_dir: {root / 'img'}}}"
    sets = [
        "model.backbone={type: CSPDarknet, depth_multiple: 0.33, width_multiple: 0.125}",
        "model.num_classes=2",
        f"data.train={{type: TiledDataset, tile_size: [64, 64], overlap: 0.2, dataset: {plain}}}",
        f"data.val.ann_file={root / 'val.json'}",
        f"data.val.img_dir={root / 'img'}",
        "data.val.pipeline=[{type: LetterBox, size: 64}]",
    ]
    cfg = load_config("yolo_n_shapes", sets)
    dump_config(cfg, root / "config.yaml")
    torch.manual_seed(0)
    state = build_model(cfg, class_names=NAMES).state_dict()
    torch.save({"model": state, "meta": {"class_names": NAMES, "config": cfg}}, root / "latest.pth")
    return root


def _args(root, *more):
    return [root / "config.yaml", root / "latest.pth", *more]


def test_eval_tile_scores_the_whole_images(run_dir, tool_in_process):
    run = tool_in_process("eval", [*_args(run_dir), "--tile", "64,64", "--tile-overlap", "0.25", "--device", "cpu"])
    assert run.returncode == 0, run.stderr
    assert "bbox/AP " in run.stdout
    tiled = "data.val={type: TiledDataset, tile_size: [64, 64], overlap: 0.25, dataset: {type: CocoDataset, "
    tiled += (
        f"ann_file: {run_dir / 'val.json'}, img_dir: {run_dir / 'img'}}}, pipeline: [{{type: LetterBox, size: 64}}]}}"
    )
    same = tool_in_process("eval", [*_args(run_dir), "--set", tiled, "--device", "cpu"])  # the config's way
    assert same.returncode == 0, same.stderr
    table = [line for line in run.stdout.splitlines() if line.startswith("bbox/")]
    assert table and table == [line for line in same.stdout.splitlines() if line.startswith("bbox/")]


@pytest.mark.parametrize(
    "more, message",
    [
        (["--tile-overlap", "0.2"], "--tile-overlap is an option of tiled evaluation: add --tile H,W"),
        (["--tile", "64,64", "--tile-overlap", "64"], "64 px of a 64 tile is 1"),
        (["--tile", "16"], "--tile must be at least 32 px"),
        (["--tile", "64,64", "--tta"], "does not combine with --tta"),
    ],
)
def test_eval_tile_mistakes(run_dir, tool_in_process, more, message):
    run = tool_in_process("eval", [*_args(run_dir), *more, "--device", "cpu"])
    assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr, run.stderr


@pytest.mark.parametrize(
    "more, message",
    [
        (["--slice_height", "320", "--slice_width", "320"], "SAHI's options; detkit's: --tile 320,320"),
        (["--overlap_height_ratio", "0.2"], "SAHI's option; detkit's: --tile-overlap 0.2"),
        (["--imgsz", "640"], "Ultralytics' option; detkit's: the test size is the config's data.val pipeline"),
        (["imgsz=640"], "size: 640}]"),
        (["--tile", "640", "640"], "--tile takes H,W as one word: --tile 640,640"),
        (["--tile", "320,320,3"], "--tile must be H,W (two numbers"),
        (["--tile", "320,320", "--tile-overlap", "64"], "64 px of a 320 tile is 0.2"),
        (["--tile", "320.7,320"], "320.7 is not one"),
    ],
)
def test_infer_answers_other_tools_option_names(run_dir, tool_in_process, more, message):
    run = tool_in_process("infer", [*_args(run_dir), run_dir / "img" / "big.png", *more])
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "unrecognized" not in lines[0], run.stderr


def test_infer_hints_at_tiles_for_a_model_trained_on_them(run_dir, tool_in_process, tmp_path):
    args = [*_args(run_dir), run_dir / "img" / "big.png", "--device", "cpu", "--no-draw"]
    run = tool_in_process("infer", [*args, "--out-dir", tmp_path / "whole"])
    assert run.returncode == 0, run.stderr
    hint = "note: this model trained on 64x64 tiles (TiledDataset); the image big.png is 400x300: add --tile 64,64"
    assert hint in run.stdout
    tiled = tool_in_process("infer", [*args, "--out-dir", tmp_path / "tiled", "--tile", "64,64"])
    assert tiled.returncode == 0 and "TiledDataset" not in tiled.stdout, tiled.stderr


def test_eval_tiling_refuses_a_model_of_other_classes(run_dir, tool_in_process):
    run = tool_in_process("eval_tiling", [*_args(run_dir), "--device", "cpu"])
    assert run.returncode == 2, run.stderr
    assert "circle, rectangle, triangle, star" in run.stderr and "(blob, other)" in run.stderr, run.stderr
