"""tools/train.py: arguments, work dir, resolved config, one-line errors, resume command.

Each mistake runs train's main in this process (tests/conftest.py ``tool_in_process``; the file mistakes that
must not import torch, and the runs, in a subprocess): exit status 2, no traceback, the key / file / dir named,
and the user's inputs (config, data, checkpoints, an existing run) byte-identical afterwards.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "engine"))
sys.path.insert(0, str(ROOT / "tools"))
import detkit_toy  # noqa: E402

_spec = importlib.util.spec_from_file_location("detkit_tool_train", ROOT / "tools" / "train.py")
train_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train_tool)


@pytest.fixture
def toy_cfg(monkeypatch, tmp_path):
    from detkit.engine import builders

    monkeypatch.setattr(builders, "build_dataset", detkit_toy.toy_build_dataset)
    monkeypatch.setattr(builders, "build_dataloader", detkit_toy.toy_build_dataloader)
    monkeypatch.setattr(builders, "build_evaluator", detkit_toy.toy_build_evaluator)
    path = tmp_path / "toy_cfg.yaml"
    path.write_text(yaml.safe_dump(detkit_toy.toy_config(max_epochs=1)))
    return path


def test_train_cli_writes_resolved_config_and_checkpoints(toy_cfg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = train_tool.main(
        [str(toy_cfg), "--set", "train.max_epochs=2", "optimizer.lr=0.01", "--seed", "5", "--device", "cpu"]
    )
    assert rc == 0
    work = tmp_path / "work_dirs" / "toy_cfg"  # default: work_dirs/<config stem>
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    assert cfg["train"]["max_epochs"] == 2 and cfg["optimizer"]["lr"] == 0.01 and cfg["seed"] == 5
    assert cfg["train"]["grad_clip"] is None  # engine defaults are written out
    assert torch.load(work / "latest.pth", weights_only=True)["meta"]["epoch"] == 2
    assert (work / "best.pth").is_file() and (work / "metrics.jsonl").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "train.max_epoch=3"], "train.max_epoch"),
        (["--resume"], "nothing to resume"),
        (["--load-from", "nowhere.pth"], "nowhere.pth"),
        (["--set", "+train.max_epoch=3"], "nearest valid: 'train.max_epochs'"),
        (["--allow-data-change"], "--allow-data-change lets a --resume go on with other data than the run's"),
    ],
)
def test_train_cli_bad_input_is_one_line_exit_2(toy_cfg, tmp_path, capsys, args, message):
    rc = train_tool.main([str(toy_cfg), "--work-dir", str(tmp_path / "w"), "--device", "cpu", *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("train: error:") and message in err and "\n" not in err


def test_a_resume_with_other_classes_is_one_line_unless_allowed(toy_cfg, tmp_path, capsys, monkeypatch):
    from detkit.engine import resume_data

    work = tmp_path / "w"
    assert train_tool.main([str(toy_cfg), "--work-dir", str(work), "--device", "cpu"]) == 0
    monkeypatch.setattr(resume_data, "class_change", lambda *a: "class names [a, b] -> [b, a]")  # (tests/engine)
    monkeypatch.setattr(resume_data, "data_changes", lambda *a: ["data.train.img_dir /a -> /b"])
    capsys.readouterr()
    before = _snapshot(work)
    resume = [str(toy_cfg), "--work-dir", str(work), "--device", "cpu", "--resume", "--set", "train.max_epochs=2"]
    assert train_tool.main(resume) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("train: error: resuming") and "class names [a, b] -> [b, a]" in err and "\n" not in err
    assert "data.train.img_dir /a -> /b" in err and "--allow-data-change" in err and _snapshot(work) == before
    assert train_tool.main([*resume, "--allow-data-change"]) == 0
    assert (work / "best.before-resume-1.pth").read_bytes() == before[work / "best.pth"]


def test_train_cli_missing_config(tmp_path, capsys):
    assert train_tool.main([str(tmp_path / "none.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_resume_command_replaces_load_from():
    cmd = train_tool.resume_command(
        ["c.yaml", "--load-from", "w.pth", "--set", "a=1", "--resume", "x.pth"], Path("out dir")
    )
    assert cmd.endswith("c.yaml --set a=1 --work-dir 'out dir' --resume") and "w.pth" not in cmd


def test_tool_template_and_resume_command_of_the_detkit_command(monkeypatch):
    assert train_tool.tool_template("tools/train.py") == "python tools/{}.py"
    assert train_tool.tool_template("detkit train") == "detkit {}"
    monkeypatch.setattr(sys, "argv", ["detkit train"])
    cmd = train_tool.resume_command(["c.yaml", "--exist-ok"], Path("w"))
    assert cmd == "detkit train c.yaml --work-dir w --resume"


# ---------------------------------------------------------------- subprocess runs of the tool
TOY_TRAIN = ROOT / "tests" / "engine" / "toy_train.py"
BASES = ["models/faster_rcnn_r18_fpn.yaml", "datasets/shapes_detection.yaml", "schedules/small_data.yaml"]


def _run(args, tool=ROOT / "tools" / "train.py", cwd=None, **env):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env}
    proc = subprocess.run(
        [sys.executable, str(tool), *map(str, args)], env=env, capture_output=True, text=True, timeout=300, cwd=cwd
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    return proc


def _snapshot(*folders):
    """The runs' files (not the work dir's lock file, which stays where it is)."""
    return {
        p: p.read_bytes()
        for d in folders
        for p in sorted(Path(d).rglob("*"))
        if p.is_file() and p.name != ".detkit-train.lock"
    }


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """A user's folder: tiny shapes data and a Faster R-CNN config on it (only read by the tests)."""
    from detkit.data.synthetic import make_shapes

    root = tmp_path_factory.mktemp("user")
    make_shapes(root / "shapes", num_train=2, num_val=2, size=(64, 64), seed=0)
    split = {"type": "CocoDataset", "pipeline": []}
    cfg = {
        "_base_": [str(ROOT / "configs" / "_base_" / b) for b in ["runtime.yaml", *BASES]],
        "data": {
            "batch_size": 2,
            "num_workers": 0,
            "train": {**split, "ann_file": str(root / "shapes/train.json"), "img_dir": str(root / "shapes/train")},
            "val": {**split, "ann_file": str(root / "shapes/val.json"), "img_dir": str(root / "shapes/val")},
        },
        "train": {"max_epochs": 1},
    }
    (root / "frcnn.yaml").write_text(yaml.safe_dump(cfg))
    val = json.loads((root / "shapes/val.json").read_text())
    names = {c["id"]: c["name"] for c in val["categories"]}
    for c in val["categories"]:  # the same ids, the first two names swapped (another export of the labels)
        c["name"] = {1: names[2], 2: names[1]}.get(c["id"], c["name"])
    (root / "val_renamed.json").write_text(json.dumps(val))
    no_area = json.loads((root / "shapes/val.json").read_text())
    no_area["annotations"][0].pop("area")
    (root / "val_no_area.json").write_text(json.dumps(no_area))
    (root / "bad_val").mkdir()
    for im in val["images"]:
        (root / "bad_val" / im["file_name"]).write_bytes(b"not an image")
    torch.save({"model": {"encoder.weight": torch.zeros(3)}, "meta": {}}, root / "other_model.pth")
    (root / "a_file").write_text("x")
    return root


PREFLIGHT_MISTAKES = [
    (["--set", "data.val.ann_file={u}/val_renamed.json"], "disagree on categories"),
    (["--set", "model.num_classes=7"], "model.num_classes is 7 but data.train has 4 classes"),
    (
        ["--set", "data.val.img_dir={u}/bad_val", "+data.val.skip_bad_images=false"],
        "data.val ({u}/shapes/val.json): its first sample does not load",
    ),
    (
        ["--set", "data.val.ann_file={u}/val_no_area.json"],
        "data.val ({u}/val_no_area.json) cannot be evaluated: {u}/val_no_area.json: annotation id=1 (image 1) has "
        "no area; COCO evaluation needs them",
    ),
    (["--set", "train.best_metric=bbox/mAP"], "train.best_metric 'bbox/mAP' is not a metric of CocoEvaluator"),
    (["--load-from", "{u}/other_model.pth"], "only 0 of the model's"),
    (["--load-from", "{u}/frcnn.yaml"], "--load-from checkpoint {u}/frcnn.yaml is a YAML file, not a PyTorch"),
    (["--set", "model.backbone.init_checkpoint={u}/frcnn.yaml"], "{u}/frcnn.yaml is a YAML file, not a PyTorch"),
    (["--work-dir", "{u}/a_file/run"], "work dir {u}/a_file/run cannot be written"),
    (["--device", "cuda:3"], "--device cuda:3"),  # more device spellings: tests/utils/test_device.py
]


@pytest.mark.parametrize("args, message", PREFLIGHT_MISTAKES)
def test_each_mistake_is_one_message_exit_2_and_changes_nothing(user, tmp_path, args, message, tool_in_process):
    args = [a.format(u=user) for a in args]
    before = _snapshot(user)
    work = ["--work-dir", tmp_path / "w"] if "--work-dir" not in args else []
    proc = tool_in_process("train", [user / "frcnn.yaml", "--device", "cpu", *work, *args])  # main() in this process
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stdout + err, err[-3000:]
    assert proc.returncode == 2, proc.stdout[-2000:] + err[-2000:]
    assert err.startswith("train: error:") and message.format(u=user) in err and len(err.splitlines()) <= 2, err
    assert _snapshot(user) == before
    assert not (tmp_path / "w").exists()  # no log, no config.yaml left behind


FILE_MISTAKES = [  # reported from the first bytes of the files, before torch is imported
    (
        ["{u}/weights.pth", "--load-from", "{u}/frcnn.yaml"],
        "--load-from {u}/frcnn.yaml a YAML file: the two are swapped",
    ),
    (["{u}/weights.pth", "--resume", "{u}/frcnn.yaml"], "--resume {u}/frcnn.yaml a YAML file: the two are swapped"),
    (["{u}/weights.pth"], "CONFIG {u}/weights.pth is a PyTorch checkpoint, not a YAML config"),
    (["{u}/noise.bin"], "CONFIG {u}/noise.bin is a binary file"),
    (["{u}/text_then_binary.yaml"], "{u}/text_then_binary.yaml is not a YAML text file (binary; a checkpoint?"),
    (["{u}/frcnn.yaml", "--load-from", "{u}/gone.pth"], "--load-from checkpoint not found: {u}/gone.pth"),
    (["{u}/frcnn.yaml", "--load-from", "{u}/empty.pth"], "--load-from checkpoint {u}/empty.pth is empty"),
    (["{u}/frcnn.yaml", "--load-from", "{u}/noise.bin"], "--load-from checkpoint {u}/noise.bin is not a PyTorch"),
    (["{u}/frcnn.yaml", "--resume", "{u}/shapes"], "--resume checkpoint {u}/shapes is a folder"),
    (["{u}/frcnn.yaml", "--device", "tpu"], "--device"),
]


@pytest.fixture(scope="module")
def files(user):
    """Files a user may give by mistake: a checkpoint, random bytes, an empty file, a YAML that turns binary."""
    torch.save({"model": {"w": torch.zeros(1)}, "meta": {}}, user / "weights.pth")
    (user / "noise.bin").write_bytes(bytes(range(7, 256)) * 16)
    (user / "empty.pth").write_bytes(b"")
    (user / "text_then_binary.yaml").write_bytes(b"seed: 1\n" * 600 + bytes(range(128, 256)))
    return user


@pytest.mark.parametrize("args, message", FILE_MISTAKES)
def test_file_mistakes_are_one_line_before_torch(files, tmp_path, args, message):
    args = [a.format(u=files) for a in [*args, "--work-dir", str(tmp_path / "w")]]
    before = _snapshot(files)
    code = (
        "import sys; from detkit.cli.train import main; rc = main(sys.argv[1:]); "
        "print('torch imported' if 'torch' in sys.modules else 'no torch'); sys.exit(rc)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120)
    err = proc.stderr.strip()
    assert proc.returncode == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("train: error:") and message.format(u=files) in err, err
    assert proc.stdout.strip() == "no torch" or "--device" in args  # a device check asks torch
    assert _snapshot(files) == before and not (tmp_path / "w").exists()


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A finished toy run (through the tool) and its config file; tests that change the run copy it."""
    root = tmp_path_factory.mktemp("toy_run")
    cfg = root / "toy.yaml"
    cfg.write_text(yaml.safe_dump(detkit_toy.toy_config(max_epochs=1)))
    proc = _run([cfg, "--work-dir", root / "run", "--device", "cpu"], tool=TOY_TRAIN)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return cfg, root / "run"


def test_a_second_training_into_a_run_is_refused_then_exist_ok_keeps_the_old_best(user, toy_run, tmp_path):
    cfg, run = toy_run[0], tmp_path / "run"
    shutil.copytree(toy_run[1], run)
    before = _snapshot(run)
    proc = _run([user / "frcnn.yaml", "--work-dir", run, "--device", "cpu"])  # another config, same dir
    err = proc.stderr.strip()
    assert proc.returncode == 2 and f"work dir {run} already holds a run" in err
    assert "--resume" in err and "--work-dir" in err and "--exist-ok" in err
    assert _snapshot(run) == before
    proc = _run([cfg, "--work-dir", run, "--device", "cpu", "--exist-ok"], tool=TOY_TRAIN)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"moved to {run / 'previous-1'}" in proc.stdout
    assert (run / "previous-1" / "best.pth").read_bytes() == before[run / "best.pth"]
    assert _snapshot(run / "previous-1") == {run / "previous-1" / p.name: b for p, b in before.items()}
    assert (run / "best.pth").is_file() and "training done: epoch 1" in proc.stdout


def test_resume_of_another_runs_checkpoint_into_a_run_is_one_line_then_exist_ok_moves_it(toy_run, tmp_path):
    """--resume runs/A/latest.pth --work-dir runs/B, B holding a run of its own: exit 2, one line naming the ways
    on, nothing changed; with --exist-ok (no longer refused beside --resume CKPT) B's run moves to previous-1."""
    cfg, other = toy_run
    run = tmp_path / "B"
    shutil.copytree(other, run)
    before = _snapshot(run)
    args = [cfg, "--work-dir", run, "--device", "cpu", "--resume", other / "latest.pth", "--set", "train.max_epochs=2"]
    proc = _run(args, tool=TOY_TRAIN)
    err = proc.stderr.strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1, err[-2000:]
    assert f"work dir {run} holds another run" in err and f"--work-dir {other}" in err and "--exist-ok" in err
    assert _snapshot(run) == before
    proc = _run([*args, "--exist-ok"], tool=TOY_TRAIN)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _snapshot(run / "previous-1") == {run / "previous-1" / p.name: b for p, b in before.items()}
    assert "training done: epoch 2" in proc.stdout


def test_resume_from_best_pth_is_refused(toy_run):
    cfg, run = toy_run
    before = _snapshot(run)
    proc = _run([cfg, "--work-dir", run, "--device", "cpu", "--resume", run / "best.pth"], tool=TOY_TRAIN)
    assert proc.returncode == 2 and "holds weights only" in proc.stderr and "--load-from" in proc.stderr
    assert _snapshot(run) == before


@pytest.mark.parametrize(
    "broken, status, message",
    [
        ({"model": {"predict_error": "evaluator on fire"}}, 1, "RuntimeError: evaluator on fire"),
        ({"data": {"val": {"missing_from": 1}}}, 2, "FileNotFoundError: image toy_1.png not found"),
    ],
)
def test_an_evaluation_error_saves_the_epoch_and_prints_the_resume_command(tmp_path, broken, status, message):
    cfg = detkit_toy.toy_config(max_epochs=2)
    for section, values in broken.items():
        target = cfg[section]["val"] if section == "data" else cfg[section]
        target.update(values["val"] if section == "data" else values)
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(cfg))
    work = tmp_path / "run"
    proc = _run([tmp_path / "toy.yaml", "--work-dir", work, "--device", "cpu"], tool=TOY_TRAIN)
    err = proc.stderr.strip()
    assert proc.returncode == status, err[-2000:]
    assert err.startswith("train: error: evaluation after epoch 1 failed") and message in err
    assert f"--work-dir {work} --resume" in err and len(err.splitlines()) == 1
    assert torch.load(work / "latest.pth", weights_only=True)["meta"]["epoch"] == 1
    assert "Traceback" in (work / "log.txt").read_text()


def test_a_runs_own_config_resumes_its_work_dir(toy_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(toy_run[1], run)
    before = _snapshot(run)
    proc = _run([run / "config.yaml", "--device", "cpu"], tool=TOY_TRAIN, cwd=tmp_path)  # no --work-dir: run/
    assert proc.returncode == 2 and f"work dir {run} already holds a run" in proc.stderr, proc.stderr[-2000:]
    assert _snapshot(run) == before and not (tmp_path / "work_dirs").exists()
    proc = _run([run / "config.yaml", "--device", "cpu", "--resume"], tool=TOY_TRAIN, cwd=tmp_path)
    assert proc.returncode == 0 and "nothing to do" in proc.stdout + proc.stderr, proc.stderr[-2000:]
    assert _snapshot(run) == before  # nothing ran: config.yaml, log.txt, metrics.jsonl as they were
    proc = _run([toy_run[0], "--work-dir", run, "--device", "cpu", "--resume", "--set", "train.log_interval=1"],
                tool=TOY_TRAIN)  # fmt: skip
    assert proc.returncode == 0 and "nothing to do" in proc.stdout + proc.stderr, proc.stderr[-2000:]
    assert _snapshot(run) == before  # another config (no config.before-resume-1.yaml)
    assert train_tool_default(tmp_path / "mine" / "config.yaml") == Path("work_dirs") / "config"  # not a run's


def train_tool_default(path):
    from detkit.cli.train import default_work_dir

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("_base_: x.yaml\n")
    return default_work_dir(str(path))


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--resume", "--exist-ok"], ["--resume", "--exist-ok", "one of them"]),
        (["--resume", "x.pth", "--load-from", "y.pth"], ["--load-from y.pth", "ignored"]),
        (["--seed", "-5"], ["--seed -5", ">= 0"]),
    ],
)
def test_contradictory_or_bad_flags_are_one_line(flags, words, tmp_path, capsys):
    rc = train_tool.main([str(ROOT / "configs" / "yolo" / "yolo_n_shapes.yaml"), "--work-dir", str(tmp_path), *flags])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and all(w in err for w in words), err
    assert not any(tmp_path.iterdir())


def test_an_unreadable_training_image_in_a_worker_is_one_line_exit_2(user, tmp_path):
    train = tmp_path / "train"
    shutil.copytree(user / "shapes" / "train", train)
    names = json.loads((user / "shapes" / "train.json").read_text())["images"]
    bad = train / names[-1]["file_name"]  # not the first sample: the pre-flight check passes, a worker fails
    bad.write_bytes(b"not an image")
    args = ["--set", f"data.train.img_dir={train}", "+data.train.skip_bad_images=false", "data.num_workers=1"]
    proc = _run([user / "frcnn.yaml", "--device", "cpu", "--work-dir", tmp_path / "w", *args])
    err = proc.stderr.strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1, err[-3000:]
    assert f"cannot decode image file {bad}" in err and "DataLoader worker" not in err, err
    assert "No checkpoint was written yet" in err and "--exist-ok" in err and "resume with" not in err


def test_resuming_another_models_checkpoint_counts_what_fits(user, toy_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(toy_run[1], run)
    before = _snapshot(run)
    proc = _run([user / "frcnn.yaml", "--device", "cpu", "--work-dir", run, "--resume", run / "latest.pth"])
    err = proc.stderr.strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1, err[-2000:]
    assert "does not fit the model: 0 of" in err and "tensors fit" in err and "config of that run" in err, err
    assert _snapshot(run) == before


def test_the_way_on_after_a_stop_fits_the_command(tmp_path):
    from types import SimpleNamespace

    from detkit.engine.workdir import how_to_go_on as _how_on

    trainer = SimpleNamespace(work_dir=tmp_path, resume_hint="detkit train c.yaml --work-dir w --resume")
    assert "--exist-ok" in _how_on(trainer)  # nothing saved yet: --resume would find nothing
    trainer.rerun_hint = "detkit train c.yaml --resume old/epoch_3.pth --work-dir w"
    assert "run the same command again (detkit train c.yaml --resume old/epoch_3.pth" in _how_on(trainer)
    (tmp_path / "latest.pth").write_bytes(b"x")
    assert _how_on(trainer).endswith("resume with: detkit train c.yaml --work-dir w --resume")
