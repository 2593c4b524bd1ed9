"""MMDetection's and Detectron2's habits on detkit's command line and in its configs: `--cfg-options k=v`,
`--config-file X`, `--eval-only`, `SOLVER.MAX_ITER 10` pairs, `--set MODEL.WEIGHTS=x.pth`, `load_from:`,
`data.samples_per_gpu`, `metainfo`, a Python config, `detkit test`; the torchrun line of the launch flags; long
messages keep their end (the fix).

Each mistake: exit status 2, one line naming detkit's form, nothing written (docs/training.md, "Coming from
MMDetection / Detectron2")."""

from __future__ import annotations

import os
import sys

import pytest

CFG = "yolo_n_shapes"

# (detkit command and arguments, words the one line must hold)
CASES = {
    "cfg_options": (
        ["train", CFG, "--cfg-options", "train.max_iters=2"],
        ["MMDetection's flag", "--set train.max_iters=2"],
    ),
    "cfg_options_peer_key": (
        ["train", CFG, "--cfg-options", "train_cfg.max_epochs=3", "data.samples_per_gpu=2"],
        ["--set train.max_epochs=3 data.batch_size=2"],
    ),
    "cfg_options_detkit_key": (  # keys of detkit's own under a name MMDetection uses too (data.*)
        ["train", CFG, "--cfg-options", "data.num_workers=0", "data.train.ann_file=a.json", "data.nope=1"],
        ["--set data.num_workers=0 data.train.ann_file=a.json", "data.nope: detkit has no such key"],
    ),
    "set_model_weights": (["train", CFG, "--set", "MODEL.WEIGHTS=x.pth"], ["Detectron2's key", "--load-from x.pth"]),
    "set_max_iter": (["train", CFG, "--set", "SOLVER.MAX_ITER=10"], ["Detectron2's key", "--set train.max_iters=10"]),
    "set_base_lr": (["train", CFG, "--set", "SOLVER.BASE_LR=0.01"], ["--set optimizer.lr=0.01", "base_batch_size)"]),
    "cfg_options_lr": (  # detkit scales the lr by the batch, as MMDetection's auto_scale_lr
        ["train", CFG, "--cfg-options", "optim_wrapper.optimizer.lr=0.01"],
        ["--set optimizer.lr=0.01 (scaled by the total batch / optimizer.base_batch_size)"],
    ),
    "cfg_options_own_lr": (  # MMDetection 2's optimizer.lr, detkit's key too
        ["train", CFG, "--cfg-options", "optimizer.lr=0.01", "train.max_iters=2"],
        ["--set optimizer.lr=0.01 train.max_iters=2 (optimizer.lr: scaled by the total batch / optimizer.base_"],
    ),
    "set_ims_per_batch": (["train", CFG, "--set", "SOLVER.IMS_PER_BATCH=16"], ["--set data.batch_size=16", "total"]),
    "set_output_dir": (["train", CFG, "--set", "OUTPUT_DIR=out"], ["--work-dir out"]),
    "set_load_from": (["train", CFG, "--set", "load_from=x.pth"], ["MMDetection's key", "--load-from x.pth"]),
    "samples_per_gpu": (["train", CFG, "--set", "data.samples_per_gpu=2"], ["MMDetection 2's", "data.batch_size=2"]),
    "workers_per_gpu": (["train", CFG, "--set", "data.workers_per_gpu=0"], ["data.num_workers=0"]),
    "metainfo": (
        ["train", CFG, "--set", "data.train.metainfo.classes=[a,b]"],
        ["data.train.metainfo is MMDetection 3's key", "data.train.dataset.classes=", "give data.val the same"],
    ),
    "ignore_index": (  # MMSegmentation's dataset key: detkit's ignore value stays 255, mapped with label_map
        ["train", "semfpn_r18_shapes", "--set", "data.train.ignore_index=254"],
        ["data.train.ignore_index is MMSegmentation's key", "model.ignore_index", "label_map, e.g. {254: 255}"],
    ),
    "config_file": (["train", "--config-file", "x.yaml"], ["Detectron2's flag", "`detkit train x.yaml ...`"]),
    "eval_only": (["train", CFG, "--eval-only"], ["Detectron2's flag", "`detkit eval CONFIG CHECKPOINT`"]),
    "opts": (["train", CFG, "--opts", "SOLVER.MAX_ITER", "10"], ["Detectron2's flag", "--set train.max_iters=10"]),
    "key_value_pair": (["train", CFG, "SOLVER.MAX_ITER", "10"], ["KEY VALUE override", "--set train.max_iters=10"]),
    "lazy_config_word": (["train", CFG, "train.max_iter=10"], ["Detectron2's", "--set train.max_iters=10"]),
    "auto_resume": (["train", CFG, "--auto-resume"], ["MMDetection's flag", "detkit's: --resume"]),
    "eval_metrics": (["eval", CFG, "x.pth", "--eval", "bbox", "segm"], ["MMDetection 2's flag", "config's metrics"]),
    "show_dir": (
        ["eval", CFG, "x.pth", "--show-dir", "vis"],
        ["detkit infer CONFIG CHECKPOINT INPUT... --out-dir vis"],
    ),
    "test_command": (["test", CFG, "x.pth"], ["MMDetection's tools/test.py", "`detkit eval CONFIG CHECKPOINT`"]),
}
# config files: (YAML text, words)
FILES = {
    "load_from": (
        "_base_: [yolo_n_shapes]\nload_from: w.pth\n",
        ["load_from is MMDetection's key", "--load-from w.pth"],
    ),
    "resume": ("_base_: [yolo_n_shapes]\nresume: true\n", ["MMDetection 3's and Ultralytics' key", "--resume"]),
    "metainfo": (
        "_base_: [yolo_n_shapes]\ndata: {train: {metainfo: {classes: [a]}}}\n",
        ["data.train.metainfo", "annotation json's categories"],
    ),
    "detectron2": ("_BASE_: b.yaml\nMODEL: {WEIGHTS: w.pkl}\nSOLVER: {MAX_ITER: 9}\n", ["a Detectron2 config"]),
}


@pytest.mark.parametrize(
    "path, train, answer",
    [
        (
            ("data", "train", "metainfo"),
            {"type": "MixDataset", "dataset": {"type": "CocoDataset"}},
            "data.train.dataset.classes=",
        ),
        (("data", "train", "metainfo"), {"type": "CocoDataset"}, "data.train.classes="),
        (
            ("data", "train", "dataset", "metainfo"),
            {"type": "MixDataset", "dataset": {"type": "CocoDataset"}},
            "data.train.dataset.classes=",
        ),
        (
            ("data", "train", "img_prefix"),
            {"type": "MixDataset", "dataset": {"type": "CocoDataset"}},
            "data.train.img_dir=",
        ),
        (
            ("data", "train", "filter_empty_gt"),
            {"type": "MixDataset", "dataset": {"type": "CocoDataset"}},
            "data.train.dataset.filter_empty=",
        ),
    ],
)
def test_a_dataset_key_is_answered_where_the_config_at_hand_takes_it(path, train, answer):
    from detkit.peer_names import config_key, words_to_set

    value = {"classes": ["a", "b"]} if path[-1] == "metainfo" else "x"
    cfg = {"data": {"train": train}}
    assert answer in config_key(path, value, cfg).line()
    if path[-1] != "metainfo":  # the same through --cfg-options words
        assert answer in " ".join(words_to_set([(".".join(path), "x")], cfg).sets)
    assert "data.train.classes=" in config_key(("data", "train", "metainfo"), {"classes": ["a"]}).line()  # no cfg


def test_detkit_own_keys_are_given_back_with_set():
    from detkit.config import load_config
    from detkit.peer_names import is_detkit_key, words_to_set

    pairs = [("data.num_workers", "0"), ("data.val_batch_size", "2"), ("data.val.img_dir", "v"), ("data.x", "1")]
    fix = words_to_set(pairs)
    assert fix.sets == ["data.num_workers=0", "data.val_batch_size=2", "data.val.img_dir=v"], fix.sets
    assert "data.x: detkit has no such key" in fix.note and "num_workers" not in fix.note
    cfg = load_config(CFG)  # the config at hand: its datasets decide (a MixDataset's inner CocoDataset)
    assert is_detkit_key("data.train.dataset.filter_empty", "true", cfg)
    assert not is_detkit_key("data.train.dataset.mask_dir", "m", cfg) and not is_detkit_key("data.trian.x", "1", cfg)
    assert is_detkit_key("data.num_workers", "-1")  # a bad value is still detkit's key


def _refused(run, tmp_path) -> str:
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and "unrecognized" not in run.stderr, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert sorted(os.listdir(tmp_path)) == sorted(p for p in os.listdir(tmp_path) if p.endswith((".yaml", ".py")))
    return lines[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_peer_habit_is_answered_with_detkit_form(case, tool_in_process, tmp_path):
    args, words = CASES[case]
    line = _refused(tool_in_process("detkit", args, cwd=tmp_path), tmp_path)
    assert line.startswith("detkit"), line
    assert all(w in line for w in words), line


@pytest.mark.parametrize("case", sorted(FILES))
def test_a_peer_key_in_a_config_file_names_detkit_form(case, tool_in_process, tmp_path):
    text, words = FILES[case]
    (tmp_path / "my.yaml").write_text(text)
    line = _refused(tool_in_process("detkit", ["train", "my.yaml"], cwd=tmp_path), tmp_path)
    assert all(w in line for w in words), line


@pytest.mark.parametrize("name", ["x.py", "lazy.py"])
def test_a_python_config_is_refused_with_the_yaml_way(name, tool_in_process, tmp_path):
    (tmp_path / name).write_text("_base_ = ['../_base_/x.py']\nmodel = dict(type='FasterRCNN')\n")
    line = _refused(tool_in_process("detkit", ["train", name], cwd=tmp_path), tmp_path)
    assert "Python config" in line and "YAML" in line and "docs/configs.md" in line, line


def test_script_form_names_the_scripts(tool_in_process, tmp_path):
    line = _refused(tool_in_process("train", [CFG, "--eval-only"], cwd=tmp_path), tmp_path)
    assert "`python tools/eval.py CONFIG CHECKPOINT`" in line, line


@pytest.mark.parametrize(
    "flags, n", [(["--num-gpus", "1"], "1"), (["--launcher", "pytorch"], "N"), (["--gpus", "2"], "2")]
)
def test_launch_flags_give_a_torchrun_line_that_runs(flags, n, tool_in_process, tmp_path):
    line = _refused(tool_in_process("detkit", ["train", CFG, *flags], cwd=tmp_path), tmp_path)
    assert f"torchrun --nproc-per-node {n} -m detkit.cli.main train CONFIG" in line, line
    assert f"torchrun --nproc-per-node {n} detkit" not in line and "detkit train option" not in line, line
    line = _refused(tool_in_process("train", [CFG, *flags], cwd=tmp_path), tmp_path)
    assert f"torchrun --nproc-per-node {n} tools/train.py CONFIG" in line, line


def test_as_invoked_keeps_torchrun_runnable_and_other_toolkits_scripts(monkeypatch):
    from detkit.cli.errors import as_invoked

    monkeypatch.setattr(sys, "argv", ["detkit train"])
    assert as_invoked("torchrun --nproc-per-node 8 --standalone tools/train.py CONFIG") == (
        "torchrun --nproc-per-node 8 --standalone -m detkit.cli.main train CONFIG"
    )
    assert as_invoked("MMDetection's tools/train.py option") == "MMDetection's tools/train.py option"
    assert as_invoked("run python tools/eval.py CFG") == "run detkit eval CFG"


def test_a_long_message_keeps_its_fix(tmp_path, monkeypatch):
    """3 bad records: the header, the problems that fit, how many were left out, and the last line (the fix)."""
    import json

    import numpy as np
    from PIL import Image

    from detkit.cli.errors import MAX_MESSAGE, format_error
    from detkit.data.datasets.coco import CocoDataset

    monkeypatch.setattr(sys, "argv", ["detkit train"])
    (tmp_path / "img").mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "img" / "a.jpg")
    ann = {"image_id": 1, "category_id": 1, "bbox": [1, 1, 9, 9], "area": 81, "iscrowd": 0, "segmentation": [[1, 2, 3]]}
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 32, "height": 32}],
        "annotations": [{**ann, "id": i} for i in range(1, 4)],
        "categories": [{"id": 1, "name": "x"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(data))
    with pytest.raises(Exception) as info:
        CocoDataset(str(tmp_path / "ann.json"), str(tmp_path / "img"), with_masks=True)
    line = format_error("train", info.value)
    assert "\n" not in line and len(line) <= MAX_MESSAGE + len("detkit train: error: ")
    assert line.startswith("detkit train: error: 3 bad record(s)") and "annotation #0" in line
    assert "more line" in line and line.endswith("to leave them out.")


def test_a_long_line_loses_its_middle_not_its_end():
    from detkit.cli.errors import MAX_MESSAGE, shorten

    text = "10 problems: " + "; ".join(f"unknown key 'model.k{i}' (nearest valid: 'model.x')" for i in range(20))
    short = shorten(text + "; fix: see docs/configs.md")
    assert len(short) <= MAX_MESSAGE and short.startswith("10 problems: unknown key 'model.k0'")
    assert short.endswith("; fix: see docs/configs.md") and " characters ...] " in short
    assert shorten("short\nmessage") == "short message"


def test_a_long_word_is_cut_inside(monkeypatch):
    """The review: a long token without spaces was dropped whole (57 of 600 characters kept)."""
    from detkit.cli.errors import as_invoked, shorten

    out = shorten("first " + "y" * 700 + "\nmid\nlast fix")
    assert out.startswith("first yyyy") and out.endswith("last fix") and 400 < len(out) <= 620
    monkeypatch.setattr("sys.argv", ["detkit"])
    assert as_invoked("run python tools/train.py CONFIG") == "run detkit train CONFIG"
