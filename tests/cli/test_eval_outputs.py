"""eval's outputs: --out holds the per-class table beside the metrics (it was printed only), --save-json the COCO
results as scored, --max-dets the detections per image AP counts; pickle names refused."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from detkit.cli.eval import per_class_records
from detkit.evaluation.per_class_ap import ClassAP
from detkit.evaluation.semseg import SemSegEvaluator

ROOT = Path(__file__).resolve().parents[2]


def test_semantic_per_class_records_with_absent_classes_as_null():
    ev = SemSegEvaluator(num_classes=3, class_names=["bg", "road", "car"])
    gt = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]])
    ev.update(pred, gt)
    metrics = ev.compute()
    rows = json.loads(json.dumps(per_class_records(ev), allow_nan=False))  # strict JSON: no NaN
    assert metrics["sem/mIoU"] == 0.75
    assert [r["name"] for r in rows] == ["bg", "road", "car"]
    assert rows[0]["IoU"] == 0.75 and rows[1]["IoU"] == 0.75 and rows[1]["num_pixels"] == 3  # 255 ignored
    assert rows[2]["IoU"] is None and rows[2]["Acc"] is None  # car: in neither ground truth nor prediction


def test_coco_per_class_records_by_iou_type_and_none_without_a_table():
    class Coco:
        per_class = {"bbox": [ClassAP("cat", 3, 0.5, 0.75, 4)], "segm": [ClassAP("cat", 3, -1.0, -1.0, 0)]}

    assert per_class_records(Coco()) == {
        "bbox": [{"name": "cat", "category_id": 3, "AP": 0.5, "AP50": 0.75, "num_gt": 4}],
        "segm": [{"name": "cat", "category_id": 3, "AP": -1.0, "AP50": -1.0, "num_gt": 0}],
    }
    assert per_class_records(object()) == []  # an evaluator without a table


@pytest.fixture(scope="module")
def random_yolo(tmp_path_factory) -> dict:
    """An untrained yolo_n on 3 tiny shapes images (its detections are many and poor: enough to score)."""
    from detkit.config import load_config
    from detkit.data.synthetic import make_shapes
    from detkit.models.build import build_model

    root = tmp_path_factory.mktemp("eval_outputs")
    shapes = make_shapes(root / "shapes", num_train=1, num_val=3, size=(64, 64), seed=1)
    cfg = {
        "_base_": [str(ROOT / "configs" / "yolo" / "yolo_n_shapes.yaml")],
        "data": {
            "batch_size": 2,
            "num_workers": 0,
            "train": {"ann_file": str(shapes["train_ann_file"]), "img_dir": str(shapes["train_img_dir"])},
            "val": {
                "ann_file": str(shapes["val_ann_file"]),
                "img_dir": str(shapes["val_img_dir"]),
                "pipeline": [{"type": "LetterBox", "size": 64}],
            },
        },
    }
    (root / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    gt = json.loads(shapes["val_ann_file"].read_text())
    names = [c["name"] for c in sorted(gt["categories"], key=lambda c: c["id"])]
    ids = sorted(c["id"] for c in gt["categories"])
    torch.manual_seed(0)
    model = build_model(load_config(root / "cfg.yaml"), class_names=names)
    meta = {"config": load_config(root / "cfg.yaml"), "class_names": names, "cat_ids": ids}
    torch.save({"model": model.state_dict(), "meta": meta}, root / "model.pth")
    return {"root": root, "cfg": root / "cfg.yaml", "ckpt": root / "model.pth", "gt": shapes["val_ann_file"]}


def test_save_json_writes_the_scored_results_with_dataset_ids(random_yolo, tool_in_process, tmp_path):
    """MMDetection's --out results.pkl / Detectron2's coco_instances_results.json: the predictions as scored."""
    from detkit.evaluation import coco_metrics

    r = random_yolo
    res, out, table = tmp_path / "results.json", tmp_path / "metrics.json", tmp_path / "per_class.json"
    args = [r["cfg"], r["ckpt"], "--save-json", res, "--out", out, "--per-class", table, "--device", "cpu"]
    run = tool_in_process("eval", args)
    assert run.returncode == 0, run.stderr
    results = json.loads(res.read_text())
    gt = json.loads(r["gt"].read_text())
    assert results and {d["image_id"] for d in results} <= {im["id"] for im in gt["images"]}
    assert {d["category_id"] for d in results} <= {c["id"] for c in gt["categories"]}
    metrics = json.loads(out.read_text())
    assert all(isinstance(v, float) for v in metrics.values())  # --out stays {metric: value}
    assert coco_metrics(r["gt"], results)["bbox/AP"] == pytest.approx(metrics["bbox/AP"], abs=1e-12)
    rows = json.loads(table.read_text())["bbox"]
    assert [row["category_id"] for row in rows] == sorted(c["id"] for c in gt["categories"])
    assert "detections written to" in run.stdout


def test_two_outputs_on_one_file_and_save_json_of_a_classifier_are_refused(random_yolo, tool_in_process, tmp_path):
    r = random_yolo
    same = tmp_path / "same.json"
    run = tool_in_process("eval", [r["cfg"], r["ckpt"], "--out", same, "--save-json", same, "--device", "cpu"])
    assert run.returncode == 2 and "--save-json" in run.stderr and "--out's file" in run.stderr
    assert not same.exists()
    cls = ROOT / "configs" / "cls" / "resnet18_shapes.yaml"  # refused before any evaluation (or data read)
    run = tool_in_process("eval", [cls, r["ckpt"], "--save-json", tmp_path / "r.json", "--device", "cpu"])
    assert run.returncode == 2 and "classifier gives no COCO results" in run.stderr, run.stderr


@pytest.mark.parametrize("flag", ["--out", "--save-json"])
def test_a_pickle_name_is_refused_with_the_json_options(random_yolo, tool_in_process, tmp_path, flag):
    r = random_yolo
    run = tool_in_process("eval", [r["cfg"], r["ckpt"], flag, tmp_path / "results.pkl", "--device", "cpu"])
    err = run.stderr.strip()
    assert run.returncode == 2 and len(err.splitlines()) == 1 and "--save-json results.json" in err
    assert not (tmp_path / "results.pkl").exists()


def test_max_dets_reaches_the_evaluator(random_yolo, tool_in_process, tmp_path):
    r = random_yolo
    run = tool_in_process("eval", [r["cfg"], r["ckpt"], "--device", "cpu", "--max-dets", "1000"])
    assert run.returncode == 0, run.stderr
    assert "maxDets=1000 ] =" in run.stdout and "maxDets=100 ]" not in run.stdout  # pycocotools' lines, relabelled
    bad = tool_in_process("eval", [r["cfg"], r["ckpt"], "--max-dets", "0"])
    assert bad.returncode == 2 and "--max-dets 0" in bad.stderr


def _eval_command(r, out) -> list[str]:
    return [sys.executable, str(ROOT / "tools" / "eval.py"), str(r["cfg"]), str(r["ckpt"]), "--out", str(out),
            "--device", "cpu"]  # fmt: skip


def test_a_reader_that_closes_stdout_ends_eval_quietly_with_out_written(random_yolo, tmp_path):
    """``detkit eval ... | head -1``: --out is written before the report; the closed pipe ends the tool without a
    traceback (Python's recipe: stdout to devnull, exit status 1)."""
    out = tmp_path / "m.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}  # (each print is a write: the first fails)
    proc = subprocess.Popen(_eval_command(random_yolo, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # the reader gone before the report (as head -1 is after its line)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 1 and "Traceback" not in err and "BrokenPipe" not in err, err
    assert "bbox/AP" in json.loads(out.read_text())
    out.unlink()
    line = f'{shlex.join(_eval_command(random_yolo, out))} | head -1; echo "status ${{PIPESTATUS[0]}}" >&2'
    piped = subprocess.run(["bash", "-c", line], capture_output=True, text=True, env=env, timeout=300)
    assert piped.stdout.startswith("metric") and len(piped.stdout.splitlines()) == 1, piped.stdout
    assert "Traceback" not in piped.stderr and "Exception ignored" not in piped.stderr, piped.stderr
    assert re.search(r"status [01]$", piped.stderr.strip()) and "bbox/AP" in json.loads(out.read_text())
