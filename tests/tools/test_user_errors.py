"""Every tool answers each everyday mistake with exit status 2 and one clear message.

The tools run by their ``main`` in this process (``tool_in_process``, tests/conftest.py: a subprocess would spend
seconds importing torch for each of the 70 cases); one case also runs as a real subprocess.

Table-driven: for each (tool, mistake) the tool must exit 2, print no traceback, name the file / key / flag at
fault in its message, and leave every input byte-identical (the whole input tree is hashed before and after:
nothing modified, nothing written next to the inputs).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
BASE_CONFIG = ROOT / "configs" / "yolo" / "yolo_n_shapes.yaml"


def _config(root: Path, shapes: dict, **model) -> dict:
    return {
        "_base_": [str(BASE_CONFIG)],
        "model": dict(model),
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


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    """An input tree: tiny shapes data, configs, a checkpoint and its broken variants, predictions, a work dir."""
    from detkit.config import load_config
    from detkit.data.synthetic import make_shapes
    from detkit.models.build import build_model

    root = tmp_path_factory.mktemp("inputs")
    shapes = make_shapes(root / "shapes", num_train=2, num_val=3, size=(64, 64), seed=1)
    p = {k: str(v) for k, v in shapes.items()}
    (root / "cfg.yaml").write_text(yaml.safe_dump(_config(root, shapes)))
    (root / "cfg3.yaml").write_text(yaml.safe_dump(_config(root, shapes, num_classes=3)))
    cfg = load_config(root / "cfg.yaml")
    gt = json.loads(shapes["val_ann_file"].read_text())
    names = [c["name"] for c in sorted(gt["categories"], key=lambda c: c["id"])]
    ids = sorted(c["id"] for c in gt["categories"])
    torch.manual_seed(0)
    model = build_model(cfg, class_names=names)
    ckpt = {"model": model.state_dict(), "meta": {"config": cfg, "class_names": names, "cat_ids": ids}}
    torch.save(ckpt, root / "model.pth")
    data = (root / "model.pth").read_bytes()
    (root / "empty.pth").write_bytes(b"")
    (root / "truncated.pth").write_bytes(data[: len(data) // 2])
    (root / "text.pth").write_text("these are not weights\n")
    (root / "random.pth").write_bytes(bytes(range(7, 256)) * 40)
    (root / "config_as.pth").write_text((root / "cfg.yaml").read_text())
    (root / "ckpt_dir").mkdir()
    (root / "bad.yaml").write_text("model: [unclosed\n")
    (root / "afile").write_text("a file where a folder is expected\n")
    preds = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
        for a in gt["annotations"]
    ]
    (root / "preds.json").write_text(json.dumps(preds))
    (root / "preds_other_images.json").write_text(json.dumps([{**r, "image_id": r["image_id"] + 1000} for r in preds]))
    (root / "preds_dict.json").write_text(json.dumps({"annotations": preds}))
    (root / "run").mkdir()
    (root / "run" / "metrics.jsonl").write_text('{"epoch": 1, "iter": 4, "bbox/AP": 0.1}\n')
    (root / "notes.md").write_bytes(b"\x00\x01binary")
    (root / "classes.txt").write_text("cat\ndog\n")  # the user's own data: make_shapes must not replace it
    files = {
        "cfg": "cfg.yaml",
        "cfg3": "cfg3.yaml",
        "ckpt": "model.pth",
        "empty": "empty.pth",
        "truncated": "truncated.pth",
        "text": "text.pth",
        "random": "random.pth",
        "yaml_ckpt": "config_as.pth",
        "ckpt_dir": "ckpt_dir",
        "bad_yaml": "bad.yaml",
        "afile": "afile",
        "preds": "preds.json",
        "preds_other": "preds_other_images.json",
        "preds_dict": "preds_dict.json",
        "run": "run",
        "notes": "notes.md",
        "missing": "missing.pth",
    }
    p.update({key: str(root / name) for key, name in files.items()})
    p["root"] = str(root)
    return p


# (id, tool, arguments with {placeholders} of env (and {out}, a fresh folder outside the inputs), texts that
# the message must hold (the file, key or flag at fault, and the fix or what is wrong))
CASES = [
    ("eval-missing-ckpt", "eval", ["{cfg}", "{missing}"], ["missing.pth", "not found"]),
    ("eval-empty-ckpt", "eval", ["{cfg}", "{empty}"], ["empty.pth", "empty (0 bytes)"]),
    ("eval-truncated-ckpt", "eval", ["{cfg}", "{truncated}"], ["truncated.pth", "truncated"]),
    ("eval-text-ckpt", "eval", ["{cfg}", "{text}"], ["text.pth", "text file"]),
    ("eval-random-ckpt", "eval", ["{cfg}", "{random}"], ["random.pth", "not a PyTorch checkpoint"]),
    ("eval-yaml-ckpt", "eval", ["{cfg}", "{yaml_ckpt}"], ["config_as.pth", "YAML", "swap"]),
    ("eval-swapped", "eval", ["{ckpt}", "{cfg}"], ["model.pth", "cfg.yaml", "swapped"]),
    ("eval-ckpt-dir", "eval", ["{cfg}", "{ckpt_dir}"], ["ckpt_dir", "folder"]),
    ("eval-missing-config", "eval", ["{root}/nope.yaml", "{ckpt}"], ["nope.yaml", "not found"]),
    ("eval-bad-yaml", "eval", ["{bad_yaml}", "{ckpt}"], ["bad.yaml", "YAML"]),
    ("eval-config-dir", "eval", ["{ckpt_dir}", "{ckpt}"], ["CONFIG", "ckpt_dir", "folder"]),
    ("eval-device-cuda", "eval", ["{cfg}", "{ckpt}", "--device", "cuda"], ["--device cuda", "cpu"]),
    ("eval-device-7", "eval", ["{cfg}", "{ckpt}", "--device", "7"], ["--device 7"]),
    ("eval-device-foo", "eval", ["{cfg}", "{ckpt}", "--device", "foo"], ["--device foo", "cpu"]),
    ("eval-out-under-file", "eval", ["{cfg}", "{ckpt}", "--out", "{afile}/m.json"], ["--out", "afile"]),
    ("eval-out-is-ckpt", "eval", ["{cfg}", "{ckpt}", "--out", "{ckpt}"], ["--out", "overwrite"]),
    (
        "eval-out-is-val-data",
        "eval",
        ["{cfg}", "{ckpt}", "--out", "{val_ann_file}"],
        ["--out", "val.json", "overwrite"],
    ),
    (
        "eval-out-onto-an-image",
        "eval",
        ["{cfg}", "{ckpt}", "--out", "{val_img_dir}/000001.png"],
        ["--out", "file of the input folder", "overwrite"],
    ),
    ("export-out-is-val-data", "export", ["{cfg}", "{ckpt}", "--out", "{val_ann_file}"], ["--out", "overwrite"]),
    (
        "export-out-among-verify-images",
        "export",
        ["{cfg}", "{ckpt}", "--verify", "--verify-images", "{val_img_dir}", "--out", "{val_img_dir}/000002.png"],
        ["--out", "overwrite"],
    ),
    ("export-opset-5", "export", ["{cfg}", "{ckpt}", "--out", "{out}/m.onnx", "--opset", "5"], ["--opset 5", "11 to"]),
    ("export-huge-size", "export", ["{cfg}", "{ckpt}", "--out", "{out}/m.onnx", "--image-size", "99999"], ["8192"]),
    (
        "export-verify-images-alone",
        "export",
        ["{cfg}", "{ckpt}", "--out", "{out}/m.onnx", "--verify-images", "{val_img_dir}"],
        ["--verify-images", "add --verify"],
    ),
    (
        "eval-val-ann-missing",
        "eval",
        ["{cfg}", "{ckpt}", "--device", "cpu", "--set", "data.val.ann_file={root}/gone.json"],
        ["gone.json"],
    ),
    ("infer-empty-ckpt", "infer", ["{cfg}", "{empty}", "{val_img_dir}", "--out-dir", "{out}"], ["empty"]),
    ("infer-swapped", "infer", ["{ckpt}", "{cfg}", "{val_img_dir}", "--out-dir", "{out}"], ["swapped"]),
    (
        "infer-device-foo",
        "infer",
        ["{cfg}", "{ckpt}", "{val_img_dir}", "--device", "foo", "--out-dir", "{out}"],
        ["--device foo"],
    ),
    ("infer-no-input", "infer", ["-", "{ckpt}", "{root}/no_images", "--out-dir", "{out}"], ["no_images"]),
    ("infer-empty-folder", "infer", ["-", "{ckpt}", "{ckpt_dir}", "--out-dir", "{out}"], ["ckpt_dir", "no image"]),
    (
        "infer-out-is-file",
        "infer",
        ["-", "{ckpt}", "{val_img_dir}", "--out-dir", "{afile}"],
        ["--out-dir", "afile"],
    ),
    (
        "infer-out-holds-inputs",
        "infer",
        ["-", "{ckpt}", "{val_img_dir}", "--out-dir", "{val_img_dir}"],
        ["--out-dir", "overwrite"],
    ),
    (
        "infer-class-count",
        "infer",
        ["{cfg3}", "{ckpt}", "{val_img_dir}", "--device", "cpu", "--out-dir", "{out}"],
        ["model.pth", "4 classes", "num_classes: 3"],
    ),
    ("infer-bad-draw-thr", "infer", ["-", "{ckpt}", "{val_img_dir}", "--draw-thr", "5"], ["--draw-thr"]),
    (
        "infer-out-dir-inside-an-input-folder",
        "infer",
        ["-", "{ckpt}", "{val_img_dir}", "--out-dir", "{val_img_dir}/out"],
        ["--out-dir", "inside the input folder", "_out"],
    ),
    (
        "infer-no-draw-and-draw-thr",
        "infer",
        ["-", "{ckpt}", "{val_img_dir}", "--out-dir", "{out}", "--no-draw", "--draw-thr", "0.1"],
        ["--draw-thr 0.1", "--no-draw"],
    ),
    (
        "infer-tile-overlap-alone",
        "infer",
        ["-", "{ckpt}", "{val_img_dir}", "--out-dir", "{out}", "--tile-overlap", "0.5"],
        ["--tile-overlap", "--tile H,W"],
    ),
    ("analyze-missing-preds", "analyze", ["{val_ann_file}", "{root}/nope.json", "--out-dir", "{out}"], ["nope.json"]),
    ("analyze-binary-preds", "analyze", ["{val_ann_file}", "{random}", "--out-dir", "{out}"], ["random.pth"]),
    ("analyze-dict-preds", "analyze", ["{val_ann_file}", "{preds_dict}", "--out-dir", "{out}"], ["preds_dict", "list"]),
    ("analyze-swapped", "analyze", ["{preds}", "{val_ann_file}", "--out-dir", "{out}"], ["preds.json", "COCO"]),
    (
        "analyze-other-images",
        "analyze",
        ["{val_ann_file}", "{preds_other}", "--out-dir", "{out}"],
        ["preds_other_images.json", "none of its"],
    ),
    ("analyze-out-is-file", "analyze", ["{val_ann_file}", "{preds}", "--out-dir", "{afile}"], ["afile"]),
    (
        "analyze-img-dir-missing",
        "analyze",
        ["{val_ann_file}", "{preds}", "--out-dir", "{out}", "--img-dir", "{root}/nodir"],
        ["--img-dir", "nodir"],
    ),
    ("browse-ckpt-as-config", "browse_dataset", ["{ckpt}", "--out-dir", "{out}"], ["model.pth", "checkpoint"]),
    (
        "browse-ann-missing",
        "browse_dataset",
        ["{cfg}", "--out-dir", "{out}", "--set", "data.train.ann_file={root}/gone.json"],
        ["gone.json"],
    ),
    ("browse-out-is-file", "browse_dataset", ["{cfg}", "--out-dir", "{afile}"], ["--out-dir", "afile"]),
    (
        "browse-out-in-train-images",
        "browse_dataset",
        ["{cfg}", "--raw", "--out-dir", "{train_img_dir}"],
        ["--out-dir", "inside the input folder"],
    ),
    ("model-stats-ckpt-as-config", "model_stats", ["{ckpt}"], ["model.pth", "checkpoint"]),
    ("model-stats-bad-yaml", "model_stats", ["{bad_yaml}"], ["bad.yaml"]),
    ("plot-logs-missing-dir", "plot_logs", ["{root}/norun", "--out", "{out}/c.png"], ["norun"]),
    ("plot-logs-not-a-run", "plot_logs", ["{ckpt_dir}", "--out", "{out}/c.png"], ["ckpt_dir", "metrics.jsonl"]),
    ("plot-logs-unknown-key", "plot_logs", ["{run}", "--keys", "segm/AP", "--out", "{out}/c.png"], ["segm/AP"]),
    ("plot-logs-bad-suffix", "plot_logs", ["{run}", "--keys", "bbox/AP", "--out", "{out}/c.txt"], ["c.txt"]),
    ("plot-logs-out-under-file", "plot_logs", ["{run}", "--out", "{afile}/c.png"], ["--out", "afile"]),
    ("benchmark-ckpt-as-config", "benchmark", ["{ckpt}", "--task", "infer"], ["model.pth", "checkpoint"]),
    ("benchmark-device-foo", "benchmark", ["{cfg}", "--task", "infer", "--device", "foo"], ["--device foo"]),
    ("benchmark-md-binary", "benchmark", ["{cfg}", "--task", "data", "--md", "{notes}"], ["--md", "notes.md"]),
    ("eval-tiling-empty-ckpt", "eval_tiling", ["{cfg}", "{empty}"], ["empty.pth"]),
    ("eval-tiling-device-7", "eval_tiling", ["{cfg}", "{ckpt}", "--device", "7"], ["--device 7"]),
    ("eval-tiling-out-under-file", "eval_tiling", ["-", "{ckpt}", "--out", "{afile}/t.json"], ["afile"]),
    ("eval-tiling-patch-too-big", "eval_tiling", ["-", "{ckpt}", "--size", "256,384", "--patch", "1000"], ["--patch"]),
    ("model-stats-huge-size", "model_stats", ["{cfg}", "--size", "100000", "100000"], ["--size", "8192"]),
    ("make-shapes-out-is-file", "make_shapes", ["{afile}"], ["afile"]),
    ("make-shapes-foreign-data", "make_shapes", ["{root}", "--num-train", "1"], ["not the shapes class list"]),
    ("convert-weights-text", "convert_weights", ["--from", "torchvision", "{text}", "{out}/w.pth"], ["text.pth"]),
    ("convert-weights-empty", "convert_weights", ["--from", "torchvision", "{empty}", "{out}/w.pth"], ["empty"]),
    ("convert-weights-dir", "convert_weights", ["--from", "torchvision", "{ckpt_dir}", "{out}/w.pth"], ["ckpt_dir"]),
    ("detkit-eval-empty-ckpt", "detkit", ["eval", "{cfg}", "{empty}"], ["eval: error", "empty.pth"]),
    ("detkit-infer-swapped", "detkit", ["infer", "{ckpt}", "{cfg}", "{val_img_dir}"], ["swapped"]),
    ("detkit-unknown-command", "detkit", ["evaluate", "{cfg}"], ["evaluate", "eval"]),
]


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file, and every folder (so anything written there shows too)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
    return out


def run_tool(tool: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python tools/<tool>.py args`` (``python -m detkit.cli.main args`` for the ``detkit`` command)."""
    cmd = (
        [sys.executable, "-m", "detkit.cli.main"]
        if tool == "detkit"
        else [sys.executable, str(ROOT / "tools" / f"{tool}.py")]
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


@pytest.mark.parametrize("tool,args,named", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_mistake_is_one_clear_message(env, tmp_path, tool, args, named, tool_in_process):
    root = Path(env["root"])
    before = snapshot(root)
    argv = [a.format(**env, out=tmp_path / "out") for a in args]
    r = tool_in_process(tool, argv, tmp_path)
    output = r.stdout + r.stderr
    assert r.returncode == 2, output
    assert "Traceback" not in output, output
    message = r.stderr.strip().splitlines()[-1]
    assert "error: " in message and len(message) < 600, r.stderr
    for text in named:
        assert text in message, (text, message)
    assert snapshot(root) == before  # inputs byte-identical, nothing written among them


@pytest.mark.parametrize("case", ["eval-truncated-ckpt", "detkit-infer-swapped"])
def test_a_mistake_in_a_real_process(env, tmp_path, case):
    """The same answer from a fresh process (``python tools/X.py``, ``python -m detkit.cli.main``): exit 2, one line."""
    _, tool, args, named = next(c for c in CASES if c[0] == case)
    r = run_tool(tool, [a.format(**env, out=tmp_path / "out") for a in args], tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stdout + r.stderr, r.stderr
    assert all(text in r.stderr.strip().splitlines()[-1] for text in named), r.stderr


@pytest.fixture
def unwritable(tmp_path):
    """A folder this process cannot write in: read-only permissions, or for root (who writes anywhere) sysfs."""
    import tempfile

    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        yield ro
        ro.chmod(0o755)
        return
    try:
        with tempfile.TemporaryFile(dir="/sys"):
            pass
    except PermissionError:
        yield Path("/sys")
        return
    pytest.skip("no folder this process cannot write in")


@pytest.mark.parametrize(
    "tool,args",
    [
        ("eval", ["{cfg}", "{ckpt}", "--out", "{ro}/m.json"]),
        ("infer", ["-", "{ckpt}", "{val_img_dir}", "--out-dir", "{ro}/pics"]),
        ("analyze", ["{val_ann_file}", "{preds}", "--out-dir", "{ro}/analysis"]),
        ("plot_logs", ["{run}", "--out", "{ro}/c.png"]),
    ],
    ids=["eval", "infer", "analyze", "plot_logs"],
)
def test_unwritable_output_folder(env, tmp_path, unwritable, tool, args, tool_in_process):
    r = tool_in_process(tool, [a.format(**env, ro=unwritable) for a in args], tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"cannot write in {unwritable} (permission denied)" in r.stderr, r.stderr


def test_eval_warns_when_the_model_classes_are_in_another_order(env, tmp_path):
    ckpt = torch.load(env["ckpt"], weights_only=True)
    names = ckpt["meta"]["class_names"]
    ckpt["meta"]["class_names"] = [names[1], names[0], *names[2:]]
    torch.save(ckpt, tmp_path / "permuted.pth")
    r = run_tool("eval", [env["cfg"], str(tmp_path / "permuted.pth"), "--device", "cpu"], tmp_path)
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("eval: WARNING: ")]
    assert len(warnings) == 1 and "permuted.pth has the class names of data.val" in warnings[0]
    assert f"in another order (label 0: {names[1]} vs {names[0]}; label 1: {names[0]} vs {names[1]})" in warnings[0]
    assert "metric" in r.stdout and "value (0..1, -1 = undefined)" in r.stdout  # the table says its unit


def test_analyze_warns_about_category_ids_the_ground_truth_lacks(env, tmp_path):
    preds = json.loads(Path(env["preds"]).read_text())
    labels = tmp_path / "labels.json"  # 0-based labels written as category ids (ids are 1..4)
    labels.write_text(json.dumps([{**p, "category_id": p["category_id"] - 1} for p in preds]))
    r = run_tool("analyze", [env["val_ann_file"], str(labels), "--out-dir", str(tmp_path / "a"), "--no-tide"], tmp_path)
    assert r.returncode == 0, r.stderr
    (warning,) = [line for line in r.stderr.splitlines() if "WARNING" in line]
    assert warning.startswith("analyze: WARNING: ") and "labels.json" in warning and "(0)" in warning
    assert "0-based labels" in warning and "Traceback" not in r.stderr


def test_messages_are_one_line_and_warnings_plain(capsys):
    """The shared machinery: OS errors and bare KeyErrors worded, long messages joined, warnings as one line."""
    import warnings

    from detkit.cli.errors import ArgumentParser, UserError, format_error, run_tool

    assert (
        format_error("t", KeyError("data"))
        == "t: error: missing key 'data' (a config section or a field of an input file)"
    )
    assert "permission denied: /x/out" in format_error("t", PermissionError(13, "Permission denied", "/x/out"))
    assert "a part of this path is a file" in format_error("t", NotADirectoryError(20, "Not a directory", "/f/x"))
    assert format_error("t", ValueError("bad\n  thing\nhere")) == "t: error: bad thing here"

    def body(n: int) -> int:
        for _ in range(n):
            warnings.warn("categories disagree\n  (fix: map them)", UserWarning, stacklevel=1)
        raise UserError("no such thing: x.json")

    assert run_tool("t", body, 3) == 2
    err = capsys.readouterr().err
    assert err == "t: WARNING: categories disagree (fix: map them)\nt: error: no such thing: x.json\n"
    with pytest.raises(SystemExit) as stop:
        ArgumentParser(prog="t").parse_args(["--nope"])
    assert stop.value.code == 2 and capsys.readouterr().err == "t: error: unrecognized arguments: --nope (see --help)\n"


def test_training_warnings_go_to_the_log_as_one_plain_line():
    """train shows library warnings through its logger (console and log.txt), once, without file:line."""
    import warnings

    from detkit.cli.errors import loud_warnings

    lines: list[str] = []
    with loud_warnings("train", emit=lines.append) as shown:
        for _ in range(2):
            warnings.warn("no bbox detections to evaluate:\n every AP is 0", UserWarning, stacklevel=1)
        warnings.warn("other", DeprecationWarning, stacklevel=1)
    assert lines == ["no bbox detections to evaluate: every AP is 0"] and shown == lines


def test_a_loader_workers_error_is_reported_by_its_own_message():
    """DataLoader re-raises a worker's error as "Caught X in DataLoader worker ... Original Traceback ... X: msg"."""
    from detkit.cli.errors import format_error

    def wrapped(kind: type, message: str) -> BaseException:
        tb = 'Traceback (most recent call last):\n  File "x.py", line 1, in f\n    g()\n'
        return kind(f"Caught {kind.__name__} in DataLoader worker process 0.\nOriginal {tb}{kind.__name__}: {message}")

    assert format_error("t", wrapped(ValueError, "bad image x.jpg\nfix: run detkit check")) == (
        "t: error: bad image x.jpg fix: run detkit check"  # every line of the message, none of the traceback
    )
    assert format_error("t", wrapped(KeyError, "'width'")) == (
        "t: error: missing key 'width' (a config section or a field of an input file)"
    )
    image_error = type("ImageReadError", (OSError,), {})
    assert format_error("t", wrapped(image_error, "cannot decode image file a.png")) == (
        "t: error: cannot decode image file a.png"
    )
