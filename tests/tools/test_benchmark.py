"""tools/benchmark.py --task infer/train (with and without --compare torchvision) at tiny sizes; no timing checks."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
_spec = importlib.util.spec_from_file_location("detkit_tool_benchmark", ROOT / "tools" / "benchmark.py")
bench_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_tool)

from detkit.benchmark import rcnn as benchmark  # noqa: E402
from detkit.benchmark.harness import RunSettings, peak_memory  # noqa: E402
from detkit.config import load_config  # noqa: E402

FASTER = str(ROOT / "configs" / "faster_rcnn" / "faster_rcnn_r50_fpn_1x_coco.yaml")
MASK = str(ROOT / "configs" / "mask_rcnn" / "mask_rcnn_r50_fpn_1x_coco.yaml")
SHAPES = str(ROOT / "configs" / "faster_rcnn" / "faster_rcnn_r18_fpn_shapes.yaml")


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_infer_compare_torchvision_writes_rows(tmp_path, capsys):
    md = tmp_path / "bench.md"
    rc = bench_tool.main(
        [
            MASK,
            "--task",
            "infer",
            "--compare",
            "torchvision",
            "--size",
            "96",
            "128",
            "--iters",
            "1",
            "--warmup",
            "0",
            "--threads",
            "1",
            "--device",
            "cpu",
            "--md",
            str(md),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "mask_rcnn_r50_fpn" in out
    # the plain path does torchvision's arithmetic: every detection matched, identical boxes
    n_ref, n_out, matched = re.search(r"plain: (\d+)/(\d+) dets, (\d+) matched <=1px: max box 0 px", out).groups()
    assert n_ref == n_out == matched and int(n_ref) > 0
    text = md.read_text()
    assert "| date | task | config | device |" in text and "| infer |" in text and "1x96x128" in text


def test_train_compare_torchvision_row():
    cfg = load_config(FASTER)
    settings = RunSettings(iters=1, warmup=0, device="cpu", log=lambda s: None)
    row = benchmark.bench_train(cfg, size=64, batch=1, compare="torchvision", settings=settings)
    assert row["task"] == "train" and row["input"] == "1x64x64" and row["peer"] == "torchvision"
    assert row["detkit_ms"] > 0 and row["peer_ms"] > 0 and row["ratio"] == row["detkit_ms"] / row["peer_ms"]
    assert "detkit first-step loss" in row["check"] and "torchvision first-step loss" in row["check"]


def test_detkit_only_without_compare(capsys):
    rc = bench_tool.main(
        [
            SHAPES,
            "--task",
            "infer",
            "--size",
            "64",
            "96",
            "--iters",
            "1",
            "--warmup",
            "0",
            "--set",
            "model.num_classes=3",
            "--threads",
            "1",
        ]
    )
    assert rc == 0
    assert "faster_rcnn_r18_fpn" in capsys.readouterr().out


def test_train_on_a_config_with_few_classes(capsys):
    # the synthetic labels stay below the model's class count (they were 0..79 for any model)
    rc = bench_tool.main(
        [
            SHAPES,
            "--task",
            "train",
            "--train-size",
            "64",
            "--batch",
            "1",
            "--iters",
            "1",
            "--warmup",
            "0",
            "--set",
            "model.num_classes=3",
            "--threads",
            "1",
        ]
    )
    assert rc == 0 and "faster_rcnn_r18_fpn" in capsys.readouterr().out


def test_compare_needs_r50_fpn_config(capsys):
    rc = bench_tool.main(
        [SHAPES, "--task", "train", "--compare", "torchvision", "--set", "model.num_classes=3", "--iters", "1"]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("benchmark: error:") and "R50-FPN" in err


def test_compare_detections_matches_by_class():
    ref = {
        "boxes": torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 20]]),
        "scores": torch.tensor([0.9, 0.8]),
        "labels": torch.tensor([1, 2]),
    }
    out = {
        "boxes": torch.tensor([[5.5, 5, 20, 20], [0, 0, 10, 10.25]]),
        "scores": torch.tensor([0.8, 0.9]),
        "labels": torch.tensor([1, 0]),
    }  # labels as detkit indices into the category ids below
    res = benchmark.compare_detections(ref, out, category_ids=torch.tensor([1, 2]))
    assert res["n_ref"] == res["n_out"] == res["matched"] == 2
    assert res["box_diff"] == pytest.approx(0.5) and res["score_diff"] == pytest.approx(0.0)
    res = benchmark.compare_detections(ref, out, category_ids=torch.tensor([1, 2]), tol=0.3)
    assert res["matched"] == 1 and res["box_diff"] == pytest.approx(0.25)


def test_peak_memory_sees_an_allocation():
    mib, method = peak_memory(lambda: torch.ones(64, 2**20).sum(), torch.device("cpu"))
    if mib is None:
        pytest.skip(method)
    assert mib > 100 and method == "peak RSS delta"  # a 256 MiB tensor


YOLO = str(ROOT / "configs" / "yolo" / "yolo_n_coco.yaml")


def test_compare_ultralytics_rows(tmp_path, capsys):
    pytest.importorskip("ultralytics.nn.tasks")  # a failure under `make test` (tests/conftest.py)
    md = tmp_path / "bench.md"
    rc = bench_tool.main(
        [
            YOLO,
            "--task",
            "infer",
            "--compare",
            "ultralytics",
            "--size",
            "96",
            "96",
            "--iters",
            "1",
            "--warmup",
            "0",
            "--threads",
            "1",
            "--device",
            "cpu",
            "--md",
            str(md),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "forward" in out and "end2end" in out
    found = re.search(r"detections detkit (\d+), ultralytics (\d+), matched (\d+)", out)
    n_dk, n_ul, matched = map(int, found.groups())
    assert n_dk == n_ul == matched > 0  # same weights, same NMS work: the same detections
    rc = bench_tool.main(
        [
            YOLO,
            "--task",
            "train",
            "--compare",
            "ultralytics",
            "--train-size",
            "64",
            "--batch",
            "2",
            "--iters",
            "1",
            "--warmup",
            "0",
            "--threads",
            "1",
            "--device",
            "cpu",
            "--md",
            str(md),
        ]
    )
    assert rc == 0 and md.read_text().count("| yolo") == 0 and md.read_text().count("yolo_n_coco") == 3


CLS = str(ROOT / "configs" / "cls" / "resnet18_shapes.yaml")


def test_classifier_pair_gives_torchvision_outputs_and_the_tool_writes_rows(tmp_path, capsys):
    from detkit.benchmark.classifier import torchvision_classifier_pair

    tv, dk = torchvision_classifier_pair(load_config(CLS), num_classes=10)
    images = torch.randint(0, 256, (2, 3, 48, 40), dtype=torch.uint8)
    with torch.no_grad():
        ref = tv((images.float() / 255 - dk.preprocess.mean) / dk.preprocess.std).softmax(1)
        ours = dk.predict({"images": images, "image_sizes": [(48, 40)] * 2})
    torch.testing.assert_close(torch.stack([p["scores"] for p in ours]), ref, atol=1e-6, rtol=0)
    md = tmp_path / "bench.md"
    for task, size in (("infer", ["--size", "48", "48"]), ("train", ["--train-size", "32", "--batch", "4"])):
        args = [CLS, "--task", task, "--compare", "torchvision", *size, "--iters", "1", "--warmup", "0"]
        assert bench_tool.main([*args, "--threads", "1", "--device", "cpu", "--md", str(md)]) == 0
    out = capsys.readouterr().out
    assert "top-5 equal: True, max probability diff" in out
    loss = re.findall(r"first-step loss ([\d.]+)", out)
    assert len(loss) == 2 and loss[0] == loss[1]  # same weights, same batch: the same loss
    rows = md.read_text().splitlines()
    assert sum("resnet18_shapes.yaml" in r for r in rows) == 2 and any("| 1x48x48 |" in r for r in rows)


def test_compare_torchvision_refuses_a_classifier_torchvision_lacks(capsys):
    args = [str(ROOT / "configs" / "cls" / "cspdarknet_n_shapes.yaml"), "--task", "infer", "--compare", "torchvision"]
    assert bench_tool.main([*args, "--size", "32", "32", "--iters", "1", "--device", "cpu"]) == 2
    assert "--compare torchvision needs a ResNet classifier" in capsys.readouterr().err


def test_compile_adds_a_compiled_twin_of_each_row(tmp_path, capsys):
    md = tmp_path / "bench.md"
    args = [CLS, "--task", "infer", "--compare", "torchvision", "--size", "32", "32", "--iters", "1", "--warmup", "0"]
    args += ["--threads", "1", "--device", "cpu", "--compile", "--compile-backend", "eager", "--md", str(md)]
    assert bench_tool.main(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"^infer \(compiled\)\s+resnet18_cls", out, re.M) and re.search(
        r"^infer\s+resnet18_cls", out, re.M
    )
    assert "compiled backbone, head: vs eager max abs diff 0; first call" in out
    rows = [r for r in md.read_text().splitlines() if "resnet18_shapes.yaml" in r]
    assert len(rows) == 2 and "| infer (compiled) |" in rows[1] and "compiled / eager" in rows[1]


def test_compile_needs_a_model_task(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_tool.main([SHAPES, "--task", "data", "--compile"])
    assert exit_info.value.code == 2
    assert "--compile goes with --task infer or train" in capsys.readouterr().err


def test_repeat_measures_in_fresh_processes_and_reports_medians(tmp_path, capsys):
    md = tmp_path / "bench.md"
    args = [SHAPES, "--task", "infer", "--size", "64", "96", "--iters", "1", "--warmup", "0"]
    args += ["--set", "model.num_classes=3", "--threads", "1", "--device", "cpu", "--repeat", "2", "--md", str(md)]
    assert bench_tool.main(args) == 0
    out = capsys.readouterr().out
    assert "process 2 of 2" in out and "medians over 2 processes" in out
    (line,) = [r for r in md.read_text().splitlines() if "faster_rcnn_r18_fpn_shapes" in r]
    assert "| 1 x 2 processes |" in line and "| cpu | 1 |" in line


@pytest.mark.parametrize("extra", [["--repeat", "0"], ["--repeat", "2", "--task", "data"]])
def test_repeat_needs_a_count_and_a_model_task(extra, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_tool.main([SHAPES, *extra])
    assert exit_info.value.code == 2
    assert "--repeat must be >= 1; above 1 it goes with --task infer or train" in capsys.readouterr().err


def test_hotspots_rows_check_that_outputs_are_unchanged(capsys):
    args = [YOLO, "--task", "hotspots", "--size", "64", "64", "--batch", "2", "--iters", "1", "--warmup", "0"]
    assert bench_tool.main([*args, "--threads", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^c2f\s+yolo_n", out, re.M) and re.search(r"^assign\s+yolo_n", out, re.M)
    assert "max output difference" in out and "outputs equal: True; anchors 84, classes 80" in out
    assert re.search(r"^decode\s+yolo_n", out, re.M) and re.search(r"max box difference \S+ px; anchors 84", out)
    for thr in ("0.25", "0.001"):  # the early-stopping NMS gives the detections of the full one
        assert re.search(rf"^select@{thr}\s+yolo_n", out, re.M)
    assert out.count("detections equal: True") == 2


def test_amp_adds_an_autocast_twin_with_the_peer_under_the_same_autocast(tmp_path, capsys):
    md = tmp_path / "bench.md"
    args = [CLS, "--task", "train", "--compare", "torchvision", "--train-size", "32", "--batch", "4"]
    args += ["--iters", "1", "--warmup", "0", "--threads", "1", "--device", "cpu", "--amp", "bf16", "--md", str(md)]
    assert bench_tool.main(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"^train \(amp bf16\)\s+resnet18_cls", out, re.M), out
    fp32 = float(re.search(r"detkit first-step loss ([\d.]+)", out).group(1))
    tv32 = float(re.search(r"torchvision first-step loss ([\d.]+)", out).group(1))
    m = re.search(
        r"autocast bf16: first-step loss ([\d.]+) vs fp32 ([\d.]+) \(the peer's: ([\d.]+) vs ([\d.]+)\); "
        r"bf16 / fp32 \(detkit\)",
        out,
    )
    assert m and float(m.group(2)) == pytest.approx(fp32, abs=1e-4), out
    assert float(m.group(4)) == pytest.approx(tv32, abs=1e-4) and float(m.group(3)) == pytest.approx(tv32, rel=0.05)
    assert float(m.group(1)) != float(m.group(2))  # really in bf16: same weights, a rounded loss
    assert float(m.group(1)) == pytest.approx(fp32, rel=0.05)
    assert re.search(r"peer under the same autocast \d+ ms \(ratio [\d.]+\)", out)
    rows = [r for r in md.read_text().splitlines() if "resnet18_shapes.yaml" in r]
    assert len(rows) == 2 and "| train (amp bf16) |" in rows[1]


def test_amp_goes_with_train_only(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_tool.main([SHAPES, "--task", "infer", "--amp", "bf16"])
    assert exit_info.value.code == 2
    assert "--amp times training steps: it goes with --task train" in capsys.readouterr().err


def _data_config(tmp_path: Path) -> tuple[Path, Path]:
    """A config whose data.train reads ``train.json`` (not loaded: the checks come first)."""
    ann = tmp_path / "train.json"
    ann.write_text('{"images": [], "annotations": [], "categories": []}')
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        f"data:\n  batch_size: 1\n  train: {{type: CocoDataset, ann_file: {ann}, img_dir: {tmp_path / 'img'}}}\n"
    )
    return cfg, ann


def _refused(argv: list[str], capsys) -> str:
    assert bench_tool.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_md_is_not_an_input_nor_a_json_or_yaml_file(tmp_path, capsys):
    cfg, ann = _data_config(tmp_path)
    other_run = tmp_path / "config.yaml"
    other_run.write_text("model: {type: Classifier}\n")
    json_md = tmp_path / "notes.md"
    json_md.write_text('{"a": 1}')
    before = {p: p.read_bytes() for p in (cfg, ann, other_run, json_md)}
    base = [str(cfg), "--task", "data", "--iters", "1", "--warmup", "0", "--num-workers", "0"]
    assert "--md" in _refused([*base, "--md", str(ann)], capsys)
    for md in (other_run, json_md):
        err = _refused([*base, "--md", str(md)], capsys)
        assert err.startswith(f"benchmark: error: --md {md} is not a markdown file") and ".md file" in err
    assert {p: p.read_bytes() for p in before} == before


def test_split_must_exist_in_the_config(tmp_path, capsys):
    cfg, _ = _data_config(tmp_path)
    err = _refused([str(cfg), "--task", "data", "--split", "test", "--iters", "1"], capsys)
    assert "--split test" in err and "its splits are train" in err


@pytest.mark.parametrize("flag", [["--batch", "3"], ["--num-workers", "1"]])
def test_infer_refuses_the_flags_it_ignores(flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_tool.main([SHAPES, "--task", "infer", *flag])
    assert exit_info.value.code == 2
    assert f"{flag[0]} " in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--task", "train", "--size", "64", "64"],
        ["--task", "infer", "--train-size", "64"],
        ["--task", "infer", "--split", "val"],
        ["--task", "data", "--size", "64", "64"],
    ],
)
def test_size_flags_and_split_go_with_the_tasks_that_use_them(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_tool.main([SHAPES, *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{argv[2]} goes with --task" in err and "it would be ignored" in err


@pytest.mark.parametrize("config", [FASTER, CLS, str(ROOT / "configs" / "seg" / "semfpn_r18_shapes.yaml")])
def test_compare_ultralytics_needs_a_yolo_config(config, capsys):
    argv = [config, "--task", "infer", "--compare", "ultralytics", "--size", "64", "64", "--iters", "1"]
    assert "--compare ultralytics needs a YOLO config" in _refused([*argv, "--device", "cpu"], capsys)


def test_null_num_classes_gives_the_set_fix(capsys):
    argv = [str(ROOT / "configs" / "yolo" / "yolo_n_shapes.yaml"), "--task", "infer", "--size", "64", "64"]
    assert "--set model.num_classes=" in _refused([*argv, "--iters", "1", "--device", "cpu"], capsys)


@pytest.mark.parametrize("task", [["infer", "--size", "64", "64"], ["train", "--train-size", "64", "--batch", "1"]])
def test_segmentor_infer_and_train(task, capsys):
    argv = [str(ROOT / "configs" / "seg" / "semfpn_r18_shapes.yaml"), "--task", *task, "--iters", "1"]
    argv += ["--warmup", "0", "--threads", "1", "--device", "cpu", "--set", "model.num_classes=5"]
    assert bench_tool.main(argv) == 0
    assert re.search(rf"^{task[0]}\s+semanticfpn_r18", capsys.readouterr().out, re.M)
