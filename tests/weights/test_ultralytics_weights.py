"""convert-weights --from ultralytics on models a migrating user has: custom class names, other scales and tasks
than the config's, other YOLO versions and tasks, a pickled .pt (Ultralytics' own model classes, random weights)."""

import json
import shlex
import subprocess
import sys

import pytest
import torch

from detkit.cli.convert_weights import main
from detkit.weights.common import COCO_CLASSES


def _save(path, yaml_name: str, nc: int = 80, names=None):
    """A state dict of Ultralytics' own model of ``yaml_name`` (random weights) saved at ``path``; with
    ``names``, saved as Ultralytics' one-line export does: ``{'model': state_dict, 'names': {i: name}}``."""
    tasks = pytest.importorskip("ultralytics.nn.tasks")  # a failure under `make test` (tests/conftest.py)
    torch.manual_seed(0)
    kind = (
        tasks.ClassificationModel
        if "-cls" in yaml_name
        else tasks.SegmentationModel
        if "-seg" in yaml_name
        else tasks.DetectionModel
    )
    state = kind(yaml_name, nc=nc, verbose=False).state_dict()
    torch.save(state if names is None else {"model": state, "names": dict(enumerate(names))}, path)
    return path


def _convert(capsys, *argv):
    capsys.readouterr()  # what came before (Ultralytics' log lines) is not the tool's
    code = main(["--from", "ultralytics", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def _meta(path):
    return torch.load(path, map_location="cpu", weights_only=True)["meta"]


# --- class names ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def my4(tmp_path_factory):
    return _save(tmp_path_factory.mktemp("my4") / "my4_state.pth", "yolov8n.yaml", nc=4)


@pytest.mark.parametrize("form", ["txt", "data.yaml", "coco.json"])
def test_class_names_file_is_stored(tmp_path, capsys, my4, form):
    from detkit import init_model

    names = ["cat", "dog", "bird", "fish"]
    src = tmp_path / f"names.{form.split('.')[-1]}"
    if form == "txt":
        src.write_text("\n".join(names) + "\n", encoding="utf-8")
    elif form == "data.yaml":
        src.write_text("path: .\ntrain: images\nnames: {0: cat, 1: dog, 2: bird, 3: fish}\n", encoding="utf-8")
    else:
        cats = [{"id": i + 1, "name": n} for i, n in enumerate(names)][::-1]  # any order: sorted by id
        src.write_text(json.dumps({"images": [], "annotations": [], "categories": cats}), encoding="utf-8")
    dst = tmp_path / "out.pth"
    code, out, err = _convert(capsys, my4, dst, "--class-names", src)
    assert code == 0, err
    assert "4 classes: cat, dog, bird, fish" in out and "class_0" not in err
    assert _meta(dst)["class_names"] == names
    cfg = tmp_path / "my4.yaml"
    cfg.write_text("_base_: [yolo_n_coco]\nmodel: {num_classes: 4}\n", encoding="utf-8")
    assert init_model(cfg, str(dst), device="cpu").class_names == names


def test_without_names_the_output_says_what_is_stored(tmp_path, capsys, my4):
    code, _, err = _convert(capsys, my4, tmp_path / "a.pth")
    assert code == 0 and _meta(tmp_path / "a.pth")["class_names"] is None
    assert "note: no class names stored" in err and "class_0 .. class_3" in err and "--class-names FILE" in err
    code, _, err = _convert(capsys, my4, tmp_path / "b.pth", "--class-names", _names_file(tmp_path, 3))
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "b.pth").exists()
    assert "lists 3 class names but the weights have 4 classes" in err


def _names_file(folder, n):
    path = folder / f"names{n}.txt"
    path.write_text("".join(f"c{i}\n" for i in range(n)), encoding="utf-8")
    return path


def test_eighty_classes_coco_names_are_said_or_taken_from_the_weights_file(tmp_path, capsys):
    src = _save(tmp_path / "v8n.pth", "yolov8n.yaml")
    code, _, err = _convert(capsys, src, tmp_path / "coco.pth", "--config", "yolo_n_coco")
    assert code == 0 and _meta(tmp_path / "coco.pth")["class_names"] == COCO_CLASSES
    assert "COCO's names assumed" in err and "--class-names" in err  # not silently
    custom = [f"part_{i}" for i in range(80)]
    src = _save(tmp_path / "custom80.pth", "yolov8n.yaml", names=custom)  # names saved beside the state dict
    code, _, err = _convert(capsys, src, tmp_path / "custom.pth", "--config", "yolo_n_coco")
    assert code == 0 and _meta(tmp_path / "custom.pth")["class_names"] == custom and "assumed" not in err
    given = _names_file(tmp_path, 80)  # --class-names wins over the names in the file
    code, _, err = _convert(capsys, src, tmp_path / "given.pth", "--class-names", given)
    assert code == 0 and _meta(tmp_path / "given.pth")["class_names"] == [f"c{i}" for i in range(80)]


def test_pickled_pt_refusal_names_the_file_and_a_working_export(tmp_path, capsys):
    ultralytics = pytest.importorskip("ultralytics")
    tasks = pytest.importorskip("ultralytics.nn.tasks")
    yolo = ultralytics.YOLO("yolov8n.yaml")
    yolo.model = tasks.DetectionModel("yolov8n.yaml", nc=3, verbose=False)
    yolo.model.names = {0: "cat", 1: "dog", 2: "bird"}
    (tmp_path / "runs").mkdir()
    pt = tmp_path / "runs" / "my best.pt"
    yolo.save(str(pt))  # Ultralytics' own checkpoint: a pickled model
    code, _, err = _convert(capsys, pt, tmp_path / "out.pth")
    assert code == 2 and err.count("\n") == 1 and not err.rstrip().endswith("..."), err
    assert f"weights file {pt} holds Python objects" in err and "yolov8n.pt" not in err
    command = err.split("convert what this saves: ", 1)[1].strip()
    assert command.startswith("python -c ") and "state_dict()" in command and ".names" in command
    argv = shlex.split(command)
    res = subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    code, _, err = _convert(capsys, tmp_path / "my best_state.pth", tmp_path / "out.pth")
    assert code == 0, err
    assert _meta(tmp_path / "out.pth")["class_names"] == ["cat", "dog", "bird"]


# --- the config that fits ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_name", "config", "fits"),
    [
        ("yolov8s.yaml", "yolo_n_coco", "yolo_s_coco"),
        ("yolov8n-seg.yaml", "yolo_n_coco", "yolo_n_seg_coco"),
        ("yolov8s-seg.yaml", "yolo_n_coco", "yolo_s_seg_coco"),
        ("yolov8n.yaml", "yolo_s_seg_coco", "yolo_n_coco"),
    ],
)
def test_a_config_of_another_variant_names_the_one_that_fits(tmp_path, capsys, yaml_name, config, fits):
    src = _save(tmp_path / "sd.pth", yaml_name)
    code, _, err = _convert(capsys, src, tmp_path / "out.pth", "--config", config)
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "out.pth").exists(), err
    scale, task = yaml_name[6], "segment" if "-seg" in yaml_name else "detect"
    assert f"scale {scale}, {task} head" in err and f"--config {config}:" in err
    assert f"use a YOLO config of the same scale and head: --config {fits} (" in err
    code, _, err = _convert(capsys, src, tmp_path / "out.pth", "--config", fits)  # the one named converts
    assert code == 0, err


def _suggested_file(err: str, folder):
    """The config file a message asks for (`_base_: [...]` and `model: {...}`), written into ``folder``."""
    base = err.split("`_base_: [", 1)[1].split("]`", 1)[0]
    model = err.split("`model: ", 1)[1].split("`", 1)[0]
    path = folder / "suggested.yaml"
    path.write_text(f"_base_: [{base}]\nmodel: {model}\n", encoding="utf-8")
    return path


def test_a_layout_no_packaged_config_has_gets_the_config_to_write(tmp_path, capsys):
    src = _save(tmp_path / "mseg.pth", "yolov8m-seg.yaml")
    code, _, err = _convert(capsys, src, tmp_path / "out.pth", "--config", "yolo_m_coco")
    assert code == 2 and "scale m, segment head" in err and "no packaged config has it" in err, err
    assert "`_base_: [yolo_n_seg_coco]`" in err and "scale: m" in err and "proto_channels: 192" in err
    code, _, err = _convert(capsys, src, tmp_path / "out.pth", "--config", _suggested_file(err, tmp_path))
    assert code == 0, err


def test_custom_class_count_gets_the_config_file_to_write(tmp_path, capsys, my4):
    code, _, err = _convert(capsys, my4, tmp_path / "out.pth", "--config", "yolo_n_coco")
    assert code == 2 and "has model.num_classes=80 but the weights have 4 classes" in err
    assert "`_base_: [yolo_n_coco]` and `model: {num_classes: 4}`" in err
    code, _, err = _convert(capsys, my4, tmp_path / "out.pth", "--config", _suggested_file(err, tmp_path))
    assert code == 0 and _meta(tmp_path / "out.pth")["config"]["model"]["num_classes"] == 4


def test_without_config_the_note_names_the_config_that_fits(tmp_path, capsys):
    src = _save(tmp_path / "sseg.pth", "yolov8s-seg.yaml")
    code, _, err = _convert(capsys, src, tmp_path / "out.pth")
    assert code == 0 and "note: no config stored" in err and "--config yolo_s_seg_coco fits these weights" in err


# --- other YOLO versions and tasks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_name", "said"),
    [
        ("yolo11n.yaml", "a YOLO11 detect model (C3k2 / C2PSA modules"),
        ("yolo11n-seg.yaml", "a YOLO11 segment model (C3k2 / C2PSA modules"),
        ("yolov8n-cls.yaml", "a YOLOv8 classification model (YOLOv8-cls, Classify head"),
        ("yolo11n-cls.yaml", "a YOLO11 classification model (C3k2 / C2PSA modules, Classify head"),
        ("yolov8n-pose.yaml", "a YOLOv8 pose model (Pose head at layer 22)"),
        ("yolov8n-obb.yaml", "a YOLOv8 oriented-box (OBB) model (OBB head at layer 22)"),
        ("yolov10n.yaml", "a YOLOv10 detect model"),
        (
            "yolov8n-p2.yaml",
            "a YOLO detect model of another layout (Detect head at layer 28, where YOLOv8 has it at 22)",
        ),
    ],
)
def test_other_versions_and_tasks_are_named(tmp_path, capsys, yaml_name, said):
    src = _save(tmp_path / "sd.pth", yaml_name, nc=10 if "-cls" in yaml_name else 80)
    code, _, err = _convert(capsys, src, tmp_path / "out.pth")
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "out.pth").exists(), err
    assert "not a YOLOv8 detect / segment state dict: it looks like " + said in err
    assert "detkit converts YOLOv8 n/s/m/l/x detect and segment weights only" in err


def test_yolov8_layers_are_read_from_the_keys(tmp_path):
    from detkit.weights.ultralytics_arch import YOLOV8_HEAD, YOLOV8_LAYERS, describe, layer_types

    for yaml_name, head in (("yolov8s.yaml", "Detect"), ("yolov8n-seg.yaml", "Segment")):
        state = torch.load(_save(tmp_path / "sd.pth", yaml_name), weights_only=True)
        assert layer_types(state) == {**YOLOV8_LAYERS, YOLOV8_HEAD: head} and describe(state) is None
