"""`pip install .` outside the checkout: the wheel, then the `detkit` command with packaged configs.

The wheel is built from a copy of the source tree (`pip wheel --no-deps`) and installed with `--no-deps` into
a new virtual environment whose dependencies come from this environment's site-packages (a .pth file: no
5 GB torch download, and nothing of the checkout on sys.path). Every command then runs from an empty folder.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOP_LEVEL_SKIPPED = {
    ".git",
    ".venv",
    ".pytest_cache",
    "data",
    "work_dirs",
    "build",
    "dist",
    "benchmarks_out",
    "tests",
    "detkit.egg-info",
}


def skipped_in_copy(folder: str, names: list[str]) -> set[str]:
    """What the source copy leaves out: the checkout's own folders at the top, caches everywhere."""
    top = TOP_LEVEL_SKIPPED if Path(folder) == ROOT else set()
    return {n for n in names if n in top or n == "__pycache__"}


def run(args: list, cwd: Path, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    res = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(map(str, args))} exited {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """The wheel and the sdist of a copy of the source tree."""
    tmp = tmp_path_factory.mktemp("packaging")
    src, dist = tmp / "src", tmp / "dist"
    shutil.copytree(ROOT, src, symlinks=True, ignore=skipped_in_copy)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", dist, src], tmp, env)
    build_sdist = f"from setuptools import build_meta; print(build_meta.build_sdist({str(dist)!r}))"
    run([sys.executable, "-c", build_sdist], src, env)
    return {"wheel": next(dist.glob("detkit-*.whl")), "sdist": next(dist.glob("detkit-*.tar.gz")), "tmp": tmp}


@pytest.fixture(scope="module")
def installed(built) -> dict:
    """A new venv with the wheel installed (--no-deps), its dependencies seen through a .pth file."""
    tmp = built["tmp"]
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = Path(
        run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp, {}).stdout.strip()
    )
    (purelib / "detkit_test_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", PATH=f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    run([python, "-m", "pip", "--disable-pip-version-check", "-q", "install", "--no-deps", built["wheel"]], tmp, env)
    work = tmp / "work"
    work.mkdir()
    return {"python": python, "detkit": env_dir / "bin" / "detkit", "purelib": purelib, "env": env, "work": work}


def test_wheel_and_sdist_carry_the_configs_and_the_license(built):
    names = zipfile.ZipFile(built["wheel"]).namelist()
    assert "detkit/configs/yolo/yolo_n_shapes.yaml" in names and "detkit/configs/_base_/runtime.yaml" in names
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "detkit").rglob("*.py") if "__pycache__" not in p.parts}
    assert modules <= set(names), sorted(modules - set(names))[:5]  # every module of the package
    assert not any(n.startswith(("tests/", "tools/")) for n in names)
    license_file = next(n for n in names if n.endswith("LICENSE") and ".dist-info/" in n)
    assert "Apache License" in zipfile.ZipFile(built["wheel"]).read(license_file).decode()
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "detkit = detkit.cli.main:main" in zipfile.ZipFile(built["wheel"]).read(entry_points).decode()
    import tarfile

    with tarfile.open(built["sdist"]) as sdist:
        members = sdist.getnames()
    assert any(m.endswith("/LICENSE") for m in members)
    assert any(m.endswith("/detkit/configs/yolo/yolo_n_shapes.yaml") for m in members)


def test_detkit_command_trains_infers_and_exports_without_a_checkout(installed):
    python, detkit, env, work = installed["python"], installed["detkit"], installed["env"], installed["work"]
    code = "import detkit, json, sys; print(json.dumps([detkit.__file__, sys.path]))"
    module, paths = json.loads(run([python, "-c", code], work, env).stdout)
    assert module.startswith(str(installed["purelib"] / "detkit"))  # the installed copy, not the checkout
    # nothing of the checkout on sys.path but the dependencies' site-packages (its .venv, where it lies there)
    assert all(not p.startswith(str(ROOT)) or p.startswith(str(ROOT / ".venv")) for p in paths), paths

    listed = run([detkit, "configs"], work, env).stdout
    assert "yolo_n_shapes" in listed and "faster_rcnn_r18_fpn_shapes" in listed
    assert str(installed["purelib"] / "detkit" / "configs") in listed
    run([detkit, "make-shapes", "data/shapes", "--num-train", "8", "--num-val", "2", "--size", "96,96"], work, env)
    tiny = ["train.max_epochs=1", "data.batch_size=4", "data.num_workers=0", "data.train.size=96"]
    run([detkit, "train", "yolo_n_shapes", "--work-dir", "run", "--device", "cpu", "--set", *tiny], work, env, 600)
    assert (work / "run" / "latest.pth").is_file()
    ckpt = work / "run" / ("best.pth" if (work / "run" / "best.pth").is_file() else "latest.pth")
    infer = [detkit, "infer", "yolo_n_shapes", ckpt, "data/shapes/val", "--out-dir", "pred", "--device", "cpu"]
    run(infer, work, env)
    images = json.loads((work / "pred" / "images.json").read_text())
    assert len(images) == 2 and len(list((work / "pred").glob("*.jpg"))) == 2  # both images drawn
    exported = run([detkit, "export", "yolo_n_shapes", ckpt, "--out", "model.onnx", "--verify"], work, env, 600)
    assert (work / "model.onnx").is_file() and ": OK" in exported.stdout, exported.stdout
