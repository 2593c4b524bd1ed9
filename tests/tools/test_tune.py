"""tools/tune.py on tiny shapes data (YOLO n at 64 px, 1 epoch per trial): the study's files, a re-run that adds
exactly the missing trials, best.yaml trained by tools/train.py, two processes sharing one sqlite study, and
mistakes of input reported in one line with exit status 2 before any trial."""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "tune.py"
CONFIG = ROOT / "configs" / "yolo" / "yolo_n_shapes.yaml"
SPACE = (
    "optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n"
    "scheduler.warmup_iters: {type: int, low: 0, high: 20, step: 5}\n"
)


def _load(name: str, path: Path):
    if str(path.parent) not in sys.path:  # the tools import tools/_bootstrap.py, as `python tools/x.py` finds it
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tools():
    return {n: _load(f"detkit_tool_{n}", ROOT / "tools" / f"{n}.py") for n in ("tune", "train", "make_shapes")}


@pytest.fixture(scope="module")
def data(tmp_path_factory, tools):
    """8 train and 4 val images of 64 px (tools/make_shapes.py), the space file and the --set of every trial."""
    root = tmp_path_factory.mktemp("tune_data")
    assert (
        tools["make_shapes"].main([str(root / "shapes"), "--num-train", "8", "--num-val", "4", "--size", "64,64"]) == 0
    )
    (root / "space.yaml").write_text(SPACE)
    d = root / "shapes"
    sets = [
        "train.max_epochs=1",
        "data.num_workers=0",
        "data.batch_size=4",
        "data.train.size=64",
        "data.val.pipeline.0.size=64",
        f"data.train.ann_file={d / 'train.json'}",
        f"data.train.img_dir={d / 'train'}",
        f"data.val.ann_file={d / 'val.json'}",
        f"data.val.img_dir={d / 'val'}",
    ]
    return {"root": root, "space": root / "space.yaml", "sets": sets}


def _args(data, work_dir: Path, trials: int, *extra: str) -> list[str]:
    return [
        str(CONFIG),
        "--space",
        str(data["space"]),
        "--trials",
        str(trials),
        "--work-dir",
        str(work_dir),
        *extra,
        "--set",
        *data["sets"],
    ]


def _rows(work_dir: Path) -> list[dict]:
    return list(csv.DictReader((work_dir / "trials.csv").open()))


@pytest.fixture(scope="module")
def study(data, tools, tmp_path_factory):
    """A 3-trial study (in this process), and what it printed."""
    work = tmp_path_factory.mktemp("study") / "search"
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert tools["tune"].main(_args(data, work, 3, "--pruner", "none")) == 0
    return work, out.getvalue()


def test_study_writes_its_files_and_a_rerun_adds_exactly_the_missing_trials(study, data, tools, capsys):
    work, printed = study
    for name in ("study.db", "trials.csv", "best.yaml", "history.png", "slices.png", "importance.png", "parallel.png"):
        assert (work / name).is_file() and (work / name).stat().st_size > 0, name
    rows = _rows(work)
    assert [r["number"] for r in rows] == ["0", "1", "2"] and {r["state"] for r in rows} == {"complete"}
    assert list(rows[0]) == [
        "number", "state", "bbox/AP", "optimizer.lr", "scheduler.warmup_iters", "epochs", "duration_s", "work_dir", "message",
    ]  # fmt: skip
    for r in rows:
        assert 1e-4 <= float(r["optimizer.lr"]) <= 1e-2 and int(r["scheduler.warmup_iters"]) in (0, 5, 10, 15, 20)
        assert r["work_dir"] == str(work / f"trial_{r['number']}") and float(r["duration_s"]) > 0
        cfg = yaml.safe_load((work / f"trial_{r['number']}" / "config.yaml").read_text())  # its resolved config
        assert f"{cfg['optimizer']['lr']:.4g}" == r["optimizer.lr"] and cfg["train"]["max_epochs"] == 1
    for n in range(3):
        assert re.search(
            rf"^trial {n} complete  bbox/AP \d\.\d{{4}}  best \d\.\d{{4}} \(trial \d\)  optimizer.lr=", printed, re.M
        )
    assert "study 'search' in sqlite:///" in printed and "3 trials (3 complete); maximize bbox/AP" in printed
    assert "train it further: python " in printed and "best.yaml --work-dir" in printed

    mtimes = {p: p.stat().st_mtime_ns for p in work.glob("trial_*/latest.pth")}
    assert tools["tune"].main(_args(data, work, 4, "--pruner", "none")) == 0
    out = capsys.readouterr().out
    assert (
        "3 of 4 trials exist" in out and "trial 3 complete" in out and "trial 0 complete" not in out.split("\n", 2)[2]
    )
    rows4 = _rows(work)
    assert [r["number"] for r in rows4] == ["0", "1", "2", "3"] and rows4[:3] == rows  # the first three untouched
    assert mtimes == {p: p.stat().st_mtime_ns for p in work.glob("trial_[012]/latest.pth")}
    assert tools["tune"].main(_args(data, work, 4, "--pruner", "none")) == 0  # nothing left: no trial runs
    assert len(_rows(work)) == 4 and "4 of 4 trials exist" in capsys.readouterr().out


def test_best_yaml_trains_as_it_is(study, tools, tmp_path, monkeypatch, capsys):
    work, _ = study
    best = yaml.safe_load((work / "best.yaml").read_text())
    number = int((work / "best.yaml").read_text().split("best trial ", 1)[1].split()[0])
    assert best == yaml.safe_load((work / f"trial_{number}" / "config.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    assert tools["train"].main([str(work / "best.yaml"), "--work-dir", str(tmp_path / "more"), "--device", "cpu"]) == 0
    assert (tmp_path / "more" / "best.pth").is_file()


def test_two_processes_share_one_study(data, tmp_path):
    work = tmp_path / "shared"
    cmd = [sys.executable, str(TOOL), *_args(data, work, 4, "--pruner", "none")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outs]
    rows = _rows(work)
    assert [r["number"] for r in rows] == ["0", "1", "2", "3"] and {r["state"] for r in rows} == {"complete"}
    ran = [int(n) for out, _ in outs for n in re.findall(r"^trial (\d+) complete", out, re.M)]
    assert sorted(ran) == [0, 1, 2, 3]  # each trial ran once, in one of the two processes
    assert all(re.findall(r"^trial \d+ complete", out, re.M) for out, _ in outs)  # both took part
    assert all((work / f"trial_{n}" / "latest.pth").is_file() for n in range(4))


@pytest.mark.parametrize(
    "space, extra, message",
    [
        (
            "optimizer.lrr: {type: float, low: 0.001, high: 0.1}\n",
            [],
            "'optimizer.lrr' is not a key of the config (nearest: 'optimizer.lr')",
        ),
        ("optimizer.lr: {type: float, low: 0.1, high: 0.001}\n", [], "'optimizer.lr': low 0.1 is above high 0.001"),
        (
            "optimizer.lr: {type: normal, low: 0.001, high: 0.1}\n",
            [],
            "'optimizer.lr': type must be one of float, int, categorical",
        ),
        (
            "optimizer.lr: {type: float, low: 0.001, high: 0.1}\n",
            ["--sampler", "grid"],
            "--sampler grid needs a finite set of values",
        ),
        (SPACE, ["--metric", "bbox/APx"], "--metric 'bbox/APx' is not a metric of CocoEvaluator"),
        (SPACE, ["--trials", "0"], "--trials must be >= 1, got 0"),
        (SPACE, ["--storage", "postgresql://me:secret@localhost:1/db"], "--storage postgresql://me:***@localhost:1/db"),
    ],
)
def test_a_mistake_is_one_line_before_any_trial(data, tools, tmp_path, capsys, space, extra, message):
    path = tmp_path / "bad_space.yaml"
    path.write_text(space)
    args = _args(data, tmp_path / "w", 2, *extra)
    args[args.index("--space") + 1] = str(path)
    if "--trials" in extra:
        args[args.index("--trials") + 1] = extra[-1]
    assert tools["tune"].main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tune: error: ") and message in err and len(err.splitlines()) == 1, err
    assert "secret" not in err
    if message.startswith("'"):  # a mistake of the space file names the file
        assert f"tune: error: {path}: " in err
    assert not list((tmp_path / "w").glob("trial_*"))  # no trial ran


def test_a_bad_space_file_from_the_command_line(data, tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("train.max_epochs: {type: int, low: 0, high: 3}\n")
    cmd = [sys.executable, str(TOOL), *_args(data, tmp_path / "w", 2)]
    cmd[cmd.index("--space") + 1] = str(path)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr + r.stdout
    assert r.stderr.strip() == (
        f"tune: error: {path}: 'train.max_epochs': its low 0 is not a valid value: train.max_epochs must be an "
        "integer >= 1, got 0"
    )
    assert not (tmp_path / "w" / "study.db").exists()
