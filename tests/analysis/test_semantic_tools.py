"""`detkit analyze GT_LABEL_DIR PRED_DIR`: on a random Semantic FPN's predictions (written by tools/infer.py) its
summary equals what tools/eval.py reports for the same checkpoint and data; mistakes are one line and exit 2."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

import detkit
from detkit.analysis.outputs import MANIFEST
from detkit.analysis.semantic import OUTPUTS
from detkit.config import load_config

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_semantic import GT_X, GT_Y, NAMES, PRED_X, write_case  # noqa: E402


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(f"detkit_tool_{name}_sem", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


analyze_tool = _tool("analyze")


@pytest.fixture(scope="module")
def segmentor_run(tmp_path_factory):
    """A random narrow Semantic FPN on 3 shapes images of 64 px: (data paths, config path, checkpoint, infer's
    output folder)."""
    from detkit.data.synthetic import make_shapes

    root = tmp_path_factory.mktemp("semrun")
    paths = make_shapes(root / "shapes", num_train=0, num_val=3, size=(64, 64), seed=4, empty_fraction=0.0)
    val = {"img_dir": paths["val_img_dir"], "mask_dir": paths["val_sem_dir"], "classes": paths["sem_classes_file"]}
    overrides = [f"data.val.{k}={v}" for k, v in val.items()] + [
        "data.val.pipeline=[]",  # scored at the original size: eval's labels are not resized and back
        "data.num_workers=0",
        "data.batch_size=2",
        "model.neck.out_channels=16",
        "model.decode_head.channels=16",
    ]
    cfg = load_config(ROOT / "configs/seg/semfpn_r18_shapes.yaml", overrides)
    names = Path(paths["sem_classes_file"]).read_text().split()
    torch.manual_seed(0)
    model = detkit.build_model(cfg, class_names=names)
    with torch.no_grad():  # spread the class logits: a random model that predicts several classes
        torch.nn.init.normal_(model.decode_head.classifier.conv.weight, std=0.5)
    config, ckpt = root / "semfpn.yaml", root / "semfpn.pth"
    config.write_text(yaml.safe_dump(cfg))
    torch.save({"model": model.state_dict(), "meta": {"config": cfg, "class_names": names}}, ckpt)
    out = root / "infer"
    args = ["-", str(ckpt), str(paths["val_img_dir"]), "--out-dir", str(out), "--device", "cpu", "--no-draw"]
    assert _tool("infer").main(args) == 0
    return paths, config, ckpt, out


def test_summary_equals_what_eval_reports(segmentor_run, tmp_path, capsys):
    paths, config, ckpt, pred_dir = segmentor_run
    metrics, per_class = tmp_path / "metrics.json", tmp_path / "per_class.json"
    args = [str(config), str(ckpt), "--out", str(metrics), "--per-class", str(per_class), "--device", "cpu"]
    assert _tool("eval").main(args) == 0
    evaluated = capsys.readouterr().out
    out = tmp_path / "analysis"
    rc = analyze_tool.main([str(paths["val_sem_dir"]), str(pred_dir), "--out-dir", str(out), "--config", str(config)])
    printed = capsys.readouterr().out
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    reported = json.loads(metrics.read_text())
    assert summary["metrics"] == {k: reported[k] for k in ("sem/mIoU", "sem/mAcc", "sem/aAcc")}  # exactly
    assert summary["per_class"] == json.loads(per_class.read_text())
    assert 0 < summary["metrics"]["sem/mIoU"] < 1 and summary["images"] == 3
    table = evaluated[evaluated.index("sem/mIoU=") :].splitlines()[:8]  # eval's metrics line and per-class table
    assert all(line in printed for line in table) and "worst images" in printed
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUTS, "worst", MANIFEST])
    again = tmp_path / "again"  # --classes gives the same numbers (the config adds no remapping here)
    args = [
        str(paths["val_sem_dir"]),
        str(pred_dir),
        "--out-dir",
        str(again),
        "--classes",
        str(paths["sem_classes_file"]),
    ]
    assert analyze_tool.main(args) == 0
    assert json.loads((again / "summary.json").read_text())["metrics"] == summary["metrics"]


def test_class_names_come_from_infers_classes_txt(segmentor_run, tmp_path, capsys):
    paths, _, _, pred_dir = segmentor_run
    names = Path(paths["sem_classes_file"]).read_text().split()
    assert (pred_dir / "classes.txt").read_text().split() == names  # written by tools/infer.py
    out = tmp_path / "analysis"
    assert analyze_tool.main([str(paths["val_sem_dir"]), str(pred_dir), "--out-dir", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [r["name"] for r in summary["per_class"]] == names, summary  # named, not numbered
    assert summary["classes_from"] == "PRED_DIR/classes.txt (written by infer)"  # not "--classes", never given


def test_mistakes_name_infers_classes_txt_as_the_class_source(case, tmp_path, capsys):
    gt_dir, pred_dir = case
    (pred_dir / "classes.txt").write_text("\n".join(NAMES) + "\n")
    cv2.imwrite(str(pred_dir / "x_labels.png"), np.full((2, 4), 4, np.uint8))
    err = _error(capsys, [str(gt_dir), str(pred_dir), "--out-dir", str(tmp_path / "out")])
    assert "has value(s) 4 but PRED_DIR/classes.txt (written by infer) gives 3 classes" in err, err
    assert f"--classes {pred_dir}" not in err  # the option was never given


@pytest.fixture
def case(tmp_path):
    return write_case(tmp_path, {"x": (GT_X, PRED_X), "y": (GT_Y, GT_Y)})


def _error(capsys, args: list[str]) -> str:
    assert analyze_tool.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("analyze: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_mistakes_are_one_line_and_exit_2(case, tmp_path, capsys):
    gt_dir, pred_dir = case
    classes = tmp_path / "classes.txt"
    classes.write_text("\n".join(NAMES))
    base = [str(gt_dir), str(pred_dir), "--out-dir", str(tmp_path / "out")]
    cv2.imwrite(str(pred_dir / "x_labels.png"), np.zeros((3, 4), np.uint8))
    assert "is 4x3 but its ground-truth map" in _error(capsys, base)
    cv2.imwrite(str(pred_dir / "x_labels.png"), np.full((2, 4), 4, np.uint8))
    assert "has value(s) 4 but --classes" in _error(capsys, [*base, "--classes", str(classes)])
    cv2.imwrite(str(gt_dir / "w.png"), GT_Y)
    assert "1 of the 3 ground-truth map(s)" in _error(capsys, base)
    assert "no images.json" in _error(capsys, [str(gt_dir), str(gt_dir), "--out-dir", str(tmp_path / "o")])
    assert "give --classes or --config, not both" in _error(capsys, [*base, "--classes", "a", "--config", "b"])
    assert "--background bg inserts a class" in _error(capsys, [*base, "--background", "bg"])
    assert "--img-dir is for COCO ground truth" in _error(capsys, [*base, "--img-dir", str(gt_dir)])
    assert "--classes not found" in _error(capsys, [*base, "--classes", str(tmp_path / "none.txt")])
    assert "none.yaml" in _error(capsys, [*base, "--config", str(tmp_path / "none.yaml")])
    missing = [str(gt_dir), str(tmp_path / "infer_out"), "--out-dir", str(tmp_path / "o")]
    assert "PRED_DIR not found" in _error(capsys, missing)  # a folder GT and a missing folder: the semantic mode
    assert "inside the input folder" in _error(capsys, [str(gt_dir), str(pred_dir), "--out-dir", str(pred_dir / "a")])
    detection = [
        str(tmp_path / "gt.json"),
        str(tmp_path / "p.json"),
        "--out-dir",
        str(tmp_path / "o"),
        "--classes",
        "c",
    ]
    assert "--classes is for semantic label maps" in _error(capsys, detection)
    assert not (tmp_path / "out").exists()  # nothing written on a mistake


def test_a_run_prints_the_table_and_writes_the_outputs(case, tmp_path, capsys):
    out = tmp_path / "out"
    assert analyze_tool.main([*map(str, case), "--out-dir", str(out), "--num-images", "1"]) == 0
    printed = capsys.readouterr().out
    assert "sem/mIoU=" in printed and "per-class IoU and pixel accuracy in 0..1" in printed
    assert f"worst images (mIoU in 0..1, of 2):\n  {(0.5 + 2 / 3 + 0.5) / 3:.3f}" in printed
    assert len(list((out / "worst").iterdir())) == 1
