"""The tools with a trained classifier and no special flags: eval, infer (predictions.csv, drawings, the summary),
export --verify (onnxruntime), analyze (predictions.csv against class folders), check_dataset on a folder;
detkit.predict's classifier dict."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

import detkit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cls_run import train_tiny_classifier  # noqa: E402

TOOLS = HERE.parents[1] / "tools"


def _tool(name: str):
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    spec = importlib.util.spec_from_file_location(f"{name}_cls_tool", TOOLS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_tiny_classifier(tmp_path_factory.mktemp("cls_tools"))


@pytest.fixture(scope="module")
def inferred(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("infer")
    code = _tool("infer").main([str(run["config"]), str(run["checkpoint"]), str(run["val"]), "--out-dir", str(out)])
    assert code == 0
    return out


def test_eval_prints_cls_metrics_and_the_per_class_table(run, tmp_path, capsys):
    out, table = tmp_path / "metrics.json", tmp_path / "table.json"
    args = [str(run["config"]), str(run["checkpoint"]), "--out", str(out), "--per-class", str(table), "--device", "cpu"]
    assert _tool("eval").main(args) == 0
    text = capsys.readouterr().out
    assert "per class, in 0..1" in text and "circle" in text
    metrics = json.loads(out.read_text())
    assert set(metrics) == {"cls/top1", "cls/top5", "cls/mean_acc", "cls/macro_f1"}
    per_class = json.loads(table.read_text())  # the table printed above, as records
    assert "circle" in [r["name"] for r in per_class] and {"accuracy", "precision"} <= set(per_class[0])
    last = json.loads((run["work_dir"] / "metrics.jsonl").read_text().splitlines()[-1])
    assert metrics["cls/top1"] == pytest.approx(last["cls/top1"])  # best.pth = the last evaluation's weights


def test_predict_returns_class_probabilities_and_top_k(run):
    model = detkit.init_model(str(run["config"]), str(run["checkpoint"]), device="cpu")
    image = next(Path(run["val"], "star").iterdir())
    pred = detkit.predict(model, str(image))
    assert set(pred) == {"scores", "labels"}
    assert pred["scores"].shape == (4,) and float(pred["scores"].sum()) == pytest.approx(1.0, abs=1e-5)
    assert pred["labels"].dtype == torch.int64 and pred["labels"].shape == (4,)  # topk null: min(5, C)
    assert int(pred["labels"][0]) == int(pred["scores"].argmax())
    with pytest.raises(ValueError, match="tile is for detectors"):
        detkit.predict(model, str(image), tile=(64, 64))


def test_infer_writes_predictions_csv_drawings_and_the_summary(run, inferred, capsys):
    with open(inferred / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 and list(rows[0])[:4] == ["file", "frame", "label_1", "score_1"]
    assert list(rows[0])[-2:] == ["score_4", "drawn"] and rows[0]["frame"] == ""
    drawn = {r["drawn"] for r in rows}  # same-named files of two class folders get two drawings, each named here
    assert len(drawn) == 12 and all((inferred / name).is_file() for name in drawn)
    images = json.loads((inferred / "images.json").read_text())
    assert [(i["file_name"], i["drawn"]) for i in images] == [(r["file"], r["drawn"]) for r in rows]
    scores = [float(rows[0][f"score_{k}"]) for k in range(1, 5)]
    assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0, abs=1e-4)
    assert {r["label_1"] for r in rows} <= {"circle", "rectangle", "star", "triangle"}
    assert len(list(inferred.glob("*.jpg"))) == 12
    code = _tool("infer").main(
        [str(run["config"]), str(run["checkpoint"]), str(run["val"] / "circle"), "--out-dir", str(inferred / "x")]
    )
    assert code == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("3 images processed") and "top-4 classes and probabilities of 3 ->" in line
    assert "most often first:" in line and "3 drawn with their top classes" in line


def test_infer_tile_is_refused_for_a_classifier(run, tmp_path, capsys):
    args = [str(run["config"]), str(run["checkpoint"]), str(run["val"]), "--out-dir", str(tmp_path / "o")]
    assert _tool("infer").main([*args, "--tile", "64,64"]) == 2
    assert "tiled inference is for detectors" in capsys.readouterr().err


def test_export_verified_with_onnxruntime(run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "cls.onnx"
    args = [str(run["config"]), str(run["checkpoint"]), "--out", str(out), "--verify"]
    assert _tool("export").main(args) == 0
    text = capsys.readouterr().out
    assert "exported Classifier (scores, labels)" in text and "top-4 classes equal on 4" in text and ": OK" in text
    from detkit.export import run_onnx

    model = detkit.init_model(str(run["config"]), str(run["checkpoint"]), device="cpu")
    images = torch.randint(0, 256, (3, 3, 40, 32), dtype=torch.uint8)  # another size and batch than traced
    scores, labels = run_onnx(out, [images, torch.tensor([[40, 32]] * 3)])
    ref = model.predict({"images": images, "image_sizes": [(40, 32)] * 3})
    torch.testing.assert_close(torch.as_tensor(scores), torch.stack([p["scores"] for p in ref]), atol=1e-4, rtol=0)
    assert torch.equal(torch.as_tensor(labels), torch.stack([p["labels"] for p in ref]))


def test_analyze_predictions_csv_against_the_class_folders(run, inferred, tmp_path, capsys):
    out = tmp_path / "analysis"
    assert _tool("analyze").main([str(run["val"]), str(inferred / "predictions.csv"), "--out-dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert "most confused (true -> predicted" in text and "per class, in 0..1" in text
    summary = json.loads((out / "summary.json").read_text())
    with open(inferred / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    right = sum(Path(r["file"]).parent.name == r["label_1"] for r in rows)  # the class folder is the truth
    assert summary["metrics"]["cls/top1"] == pytest.approx(right / len(rows))
    assert summary["images"] == 12 and summary["topk"] == 4
    worst = sorted(p.name for p in (out / "worst").iterdir())
    assert len(worst) == min(8, len(rows) - right)
    for name in ("per_class.csv", "confusion_matrix.png", "confused_pairs.csv", "per_image.csv"):
        assert (out / name).is_file()


def test_check_dataset_on_the_class_folders(run, capsys):
    assert _tool("check_dataset").main([str(run["train"])]) == 0
    text = capsys.readouterr().out
    assert "24 images, 4 classes" in text and "imbalance (largest / smallest class): 1.0x" in text
    assert "only 6 images (under 10)" in text


def test_eval_on_other_data_and_on_the_test_split(run, tmp_path, capsys):
    """eval --data scores the stored config's model on a class-folder root (as train --data reads it); --split
    test scores its test/ folder; a split nothing gives is one line naming the fix."""
    import shutil

    ev, ckpt = _tool("eval"), str(run["checkpoint"])
    assert ev.main([str(run["config"]), ckpt, "--out", str(tmp_path / "own.json"), "--device", "cpu"]) == 0
    own = json.loads((tmp_path / "own.json").read_text())
    root = tmp_path / "data"
    for split, src in (("train", run["train"]), ("val", run["val"]), ("test", run["val"])):
        shutil.copytree(src, root / split)
    for split in ("val", "test"):
        out = tmp_path / f"{split}.json"
        args = ["-", ckpt, "--data", str(root), "--split", split, "--out", str(out), "--device", "cpu"]
        assert ev.main(args) == 0, capsys.readouterr().err
        assert json.loads(out.read_text())["cls/top1"] == pytest.approx(own["cls/top1"])  # the same images
    capsys.readouterr()
    assert ev.main([str(run["config"]), ckpt, "--split", "test"]) == 2
    err = capsys.readouterr().err.strip()
    assert "data.test is missing, so there is nothing to evaluate on; give --data" in err and "\n" not in err
    assert ev.main(["-", ckpt, "--data", str(run["train"].parent), "--split", "test"]) == 2  # train/ and val/ only
    assert "nothing to evaluate on: --data points the config's data.test section" in capsys.readouterr().err
