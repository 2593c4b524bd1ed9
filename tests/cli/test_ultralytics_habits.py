"""Ultralytics' habits on detkit's command line: `train CONFIG --data DATA.yaml`, a data.yaml or a model name given
as CONFIG, `imgsz=640 epochs=10` words and `--epochs 10` flags, `--set epochs=1`, `predict` / `detect` commands.

Each mistake: exit status 2, one line per mistake naming detkit's form, no traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from detkit.cli import main as cli
from detkit.cli import train as train_cli
from detkit.cli import tune as tune_cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from test_data_arg import make_ultralytics  # noqa: E402


@pytest.fixture(autouse=True)
def _as_detkit_command(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["detkit train"])  # messages name the command as `detkit train`


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> Path:
    return make_ultralytics(tmp_path_factory.mktemp("ds"))


def _refused(main, argv, capsys) -> list[str]:
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err
    return err.strip().splitlines()


def test_words_name_detkit_keys_for_the_config_at_hand(capsys):
    lines = _refused(train_cli.main, ["yolo_n_shapes", "imgsz=640", "epochs=10", "batch=16", "device=0"], capsys)
    assert len(lines) == 5 and all(line.startswith("detkit train: ") for line in lines)
    imgsz, epochs, batch, device, whole = lines
    assert "imgsz=640 is Ultralytics' spelling" in imgsz
    assert "--set data.train.size=640 data.val.pipeline.0.size=640" in imgsz  # training size and val LetterBox
    assert "--set train.max_epochs=10" in epochs and "--set data.batch_size=16" in batch
    assert "--device 0" in device
    assert whole.endswith(
        "detkit train yolo_n_shapes --device 0 --set data.train.size=640 data.val.pipeline.0.size=640 "
        "train.max_epochs=10 data.batch_size=16"
    )


def test_flags_and_other_names(capsys):
    lines = _refused(
        train_cli.main,
        ["--epochs", "10", "faster_rcnn_r18_fpn_shapes", "--imgsz=320", "--batch", "4", "lr0=0.02", "workers=0"],
        capsys,
    )
    text = "\n".join(lines)
    assert "--epochs 10 is Ultralytics' spelling; detkit's: --set train.max_epochs=10" in text
    # a two-stage config: the shorter-side sizes of its ResizeShortestEdge steps
    assert "'data.train.pipeline.0.short_sizes=[320]' 'data.val.pipeline.0.short_sizes=[320]'" in text
    assert "--set data.batch_size=4" in text and "optimizer.lr=0.02" in text and "data.num_workers=0" in text
    assert "unrecognized" not in text


def test_data_word_and_data_yaml_as_config_name_the_packaged_config(ds, capsys):
    lines = _refused(train_cli.main, [f"data={ds}"], capsys)
    assert f"--data {ds}" in lines[0] and lines[-1].endswith(f"detkit train yolo_n_coco --data {ds}")
    (line,) = _refused(train_cli.main, [str(ds)], capsys)
    assert "is an Ultralytics data.yaml" in line and f"`detkit train yolo_n_coco --data {ds}`" in line
    assert "detkit configs" in line


def test_a_data_yaml_as_the_config_of_another_tool_names_check_and_train(ds, capsys, monkeypatch):
    from detkit.cli import check_dataset

    monkeypatch.setattr(sys, "argv", ["detkit check"])
    (line,) = _refused(check_dataset.main, ["--config", str(ds)], capsys)
    assert line.startswith(f"detkit check: error: CONFIG {ds} is an Ultralytics data.yaml") and "train a" not in line
    assert f"`detkit check {ds}` checks it" in line and f"`detkit train yolo_n_coco --data {ds}`" in line


@pytest.mark.parametrize(
    "name, config", [("yolov8n", "yolo_n_coco"), ("yolov8n-seg", "yolo_n_seg_coco"), ("yolo11s.pt", "yolo_s_coco")]
)
def test_ultralytics_model_names_map_to_packaged_configs(name, config, capsys):
    (line,) = _refused(train_cli.main, [name], capsys)
    assert f"'{config}'" in line and f"give {config} as CONFIG" in line


def test_set_with_ultralytics_names(capsys):
    (line,) = _refused(train_cli.main, ["yolo_n_shapes", "--set", "epochs=1"], capsys)
    assert "train.max_epochs=1" in line and "scheduler" not in line
    (line,) = _refused(train_cli.main, ["yolo_n_shapes", "--set", "imgsz=160"], capsys)
    assert "data.train.size=160 data.val.pipeline.0.size=160" in line and "optimizer" not in line
    (line,) = _refused(train_cli.main, ["yolo_n_shapes", "--set", "data=ds/data.yaml"], capsys)
    assert "give --data ds/data.yaml" in line


def test_an_unknown_key_value_word_points_to_set(capsys):
    lines = _refused(train_cli.main, ["yolo_n_shapes", "hsv_h=0.1"], capsys)
    assert lines == [
        "detkit train: error: hsv_h=0.1: a KEY=VALUE word is Ultralytics' form; detkit sets config keys with --set "
        "KEY=VALUE, under detkit's names (docs/training.md, 'Coming from Ultralytics')"
    ]


def test_tune_takes_data_and_refuses_words(ds, tmp_path, capsys):
    lines = _refused(
        tune_cli.main, ["yolo_n_shapes", "--space", "s.yaml", "--trials", "1", "--work-dir", "w", "epochs=2"], capsys
    )
    assert "--set train.max_epochs=2" in lines[0] and "detkit tune yolo_n_shapes" in lines[-1]
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"optimizer.lr": {"type": "float", "low": 0.001, "high": 0.01, "log": True}}))
    args = tune_cli.parse_args(
        ["yolo_n_shapes", "--data", str(ds), "--space", str(space), "--trials", "1", "--work-dir", str(tmp_path / "w")]
    )
    cfg = tune_cli.check_args(args)
    assert cfg["data"]["train"]["dataset"]["data_yaml"] == str(ds.resolve())


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["predict", "model=yolov8n.pt"], "`detkit infer CONFIG CHECKPOINT INPUT...`"),
        (["val"], "`detkit eval CONFIG CHECKPOINT`"),
        (["detect", "train", "data=x.yaml"], "detkit picks the task from the config: `detkit train CONFIG ...`"),
        (["segment"], "yolo_n_seg_coco segments"),
        (["classify"], "cspdarknet_n_shapes classifies"),
    ],
)
def test_ultralytics_commands(argv, expected, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err


def test_bad_data_arguments_are_one_line(ds, tmp_path, capsys):
    (line,) = _refused(train_cli.main, ["yolo_n_shapes", "--data", str(tmp_path / "none.yaml")], capsys)
    assert "--data" in line and "not found" in line
    (line,) = _refused(train_cli.main, ["resnet18_shapes", "--data", str(ds), "--device", "cpu"], capsys)
    assert "ImageFolderDataset" in line and "yolo_n_coco" in line


def test_train_on_a_data_yaml_records_it_for_eval(ds, tmp_path, capsys, monkeypatch):
    from detkit.cli import eval as eval_cli

    monkeypatch.chdir(tmp_path)  # a relative data.yaml: the run stores its absolute path
    rel = Path("ds.yaml")
    rel.write_text(yaml.safe_dump({**yaml.safe_load(ds.read_text()), "path": str(ds.parent)}))
    sets = ["train.max_epochs=1", "data.train.size=64", "data.val.pipeline.0.size=64", "data.batch_size=2"]
    argv = [
        "yolo_n_shapes",
        "--data",
        str(rel),
        "--device",
        "cpu",
        "--work-dir",
        "run",
        "--set",
        *sets,
        "data.num_workers=0",
    ]
    assert train_cli.main(argv) == 0, capsys.readouterr().err
    cfg = yaml.safe_load(Path("run/config.yaml").read_text())
    assert cfg["data"]["train"]["dataset"] == {
        "type": "YOLODataset",
        "data_yaml": str(rel.resolve()),
        "split": "train",
    }
    assert cfg["data"]["val"]["data_yaml"] == str(rel.resolve()) and cfg["data"]["val"]["split"] == "val"
    assert cfg["data"]["train"]["mosaic"] == {"p": 1.0}
    monkeypatch.chdir(Path("/"))  # eval of the run from another folder reads the same data
    out = tmp_path / "metrics.json"
    assert (
        eval_cli.main(
            [str(tmp_path / "run/config.yaml"), str(tmp_path / "run/best.pth"), "--device", "cpu", "--out", str(out)]
        )
        == 0
    )
    assert "bbox/AP" in out.read_text()


def test_help_wins_over_the_words(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main(["yolo_n_shapes", "epochs=3", "-h"])
    assert exit_info.value.code == 0 and "--data DATA" in capsys.readouterr().out


def test_momentum_is_beta1_of_an_adam_family_optimizer(capsys):
    lines = _refused(train_cli.main, ["yolo_n_shapes", "momentum=0.9"], capsys)  # AdamW: no optimizer.momentum
    assert "'optimizer.betas=[0.9, 0.999]'" in lines[0] and "AdamW" in lines[0] and "optimizer.momentum" not in lines[0]
    lines = _refused(train_cli.main, ["yolo_n_coco", "momentum=0.9"], capsys)  # SGD
    assert "--set optimizer.momentum=0.9" in lines[0]


def test_tune_on_a_data_yaml_keeps_the_users_arguments(ds, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["detkit tune"])
    argv = [str(ds), "--space", "my space.yaml", "--trials", "3", "--work-dir", "w"]
    (line,) = _refused(tune_cli.main, argv, capsys)
    run = f"`detkit tune yolo_n_coco --data {ds} --space 'my space.yaml' --trials 3 --work-dir w`"
    assert line.startswith("detkit tune: error: CONFIG") and run in line and "tunes" in line
    lines = _refused(train_cli.main, [str(ds), "--device", "cpu", "epochs=2"], capsys)
    assert lines[-1].endswith(f"detkit train yolo_n_coco --data {ds} --device cpu --set train.max_epochs=2")


@pytest.mark.parametrize("word", ["pretrained=runs/yolov8n.pt", "--weights=yolov8n"])
def test_ultralytics_weights_are_converted_before_load_from(word, capsys):
    first, whole = _refused(train_cli.main, ["yolo_n_coco", word], capsys)
    assert "from ultralytics import YOLO" in first and "yolov8n_state.pth" in first
    assert "`detkit convert-weights --from ultralytics yolov8n_state.pth yolov8n_detkit.pth`" in first
    assert "--load-from yolov8n_detkit.pth" in first and whole.endswith("--load-from yolov8n_detkit.pth")


def test_weights_convert_only_for_a_config_of_their_scale(capsys):
    (line,) = _refused(train_cli.main, ["yolov8x-seg.pt"], capsys)
    assert "do not fit yolo_s_seg_coco" in line and "`_base_: [yolo_s_seg_coco]`" in line
    assert '"scale": "x"' in line and '"proto_channels": 320' in line
    (line,) = _refused(train_cli.main, ["yolov8s-seg.pt"], capsys)
    assert "its weights convert with `detkit convert-weights --from ultralytics`" in line
    (line,) = _refused(train_cli.main, ["yolo11n.pt"], capsys)
    assert "do not load" in line and "YOLOv8" in line


def test_a_mask_model_on_box_labels_is_one_line(ds, capsys):
    from detkit.data.converters.yolo import NO_MASK

    (line,) = _refused(train_cli.main, ["mask_rcnn_r18_fpn_shapes", "--data", str(ds), "--device", "cpu"], capsys)
    assert "labels are boxes" in line and "faster_rcnn_r18_fpn_shapes" in line and "with_masks" not in line
    assert "without masks" not in NO_MASK and "polygon labels" in NO_MASK  # the dataset's line agrees


def test_data_takes_a_classifiers_class_folders(tmp_path, monkeypatch, capsys):
    from test_data_arg import make_class_folders

    from detkit.cli.inputs import config_arg

    root = make_class_folders(tmp_path / "split", ("train", "val"))
    cfg = config_arg("resnet18_shapes", ["train.max_epochs=1"], needs=("model", "data"), data_yaml=root)
    assert cfg["data"]["train"]["img_dir"] == str(root / "train") and cfg["train"]["max_epochs"] == 1
    assert cfg["data"]["val"]["img_dir"] == str(root / "val") and cfg["data"]["val"]["classes"] == str(root / "train")
    photos = make_class_folders(tmp_path / "photos", ("",))
    cfg = config_arg("resnet18_shapes", ["data.val=null"], data_yaml=photos)  # one split, no validation
    assert cfg["data"]["val"] is None and cfg["data"]["train"]["img_dir"] == str(photos)
    cfg = config_arg("resnet18_shapes", ["data.val.val_fraction=0.3"], data_yaml=photos)  # held out in place
    assert (cfg["data"]["val"]["img_dir"], cfg["data"]["val"]["subset"]) == (str(photos), "val")
    assert cfg["data"]["val"]["val_fraction"] == 0.3 and cfg["data"]["train"]["val_fraction"] == 0.2
    (line,) = _refused(train_cli.main, ["resnet18_shapes", "--data", str(root / "train" / "circle")], capsys)
    assert f"--data {root / 'train' / 'circle'}" in line and "class folders" in line
    (line,) = _refused(train_cli.main, ["yolo_n_shapes", "--data", str(root)], capsys)
    assert "class-folder (classification) dataset" in line and "resnet18_shapes" in line
    monkeypatch.chdir(tmp_path)
    lines = _refused(train_cli.main, ["data=split", "epochs=1"], capsys)  # Ultralytics' classify habit
    assert lines[-1].endswith("detkit train resnet18_shapes --data split --set train.max_epochs=1")


def test_set_class_folders_on_a_detection_config_names_a_classifier(tmp_path, monkeypatch, capsys):
    from test_data_arg import make_class_folders

    make_class_folders(tmp_path / "split", ("train", "val"))
    monkeypatch.chdir(tmp_path)  # (data/shapes/train.json, the config's ann_file, is not there)
    argv = ["yolo_n_shapes", "--set", "data.train.img_dir=split/train", "data.val.img_dir=split/val"]
    (line,) = _refused(train_cli.main, argv, capsys)
    assert "data.train.img_dir split/train is a class-folder (classification) dataset" in line
    assert "use a classifier config such as resnet18_shapes" in line


def test_size_keys_cover_mosaic_size_the_default_size_and_tiles():
    """imgsz's translation names every key that sets the training size: MixDataset's size, its alias mosaic.size
    when only that is given, the default 640 when neither is, and a TiledDataset's tile_size."""
    from detkit.ultralytics_names import size_keys

    def keys(train: dict) -> list:
        return size_keys({"data": {"train": train}}, 320)

    inner = {"type": "CocoDataset", "pipeline": [{"type": "LetterBox", "size": 512}]}
    assert keys({"type": "MixDataset", "size": 416, "dataset": inner}) == [
        ("data.train.size", 416, 320),
        ("data.train.dataset.pipeline.0.size", 512, 320),
    ]
    assert keys({"type": "MixDataset", "size": None, "mosaic": {"size": 480}})[0] == (
        "data.train.mosaic.size",
        480,
        320,
    )
    assert keys({"type": "MixDataset", "mosaic": {"p": 1.0}}) == [("data.train.size", 640, 320)]
    both = keys({"type": "MixDataset", "size": 480, "mosaic": {"size": 480}})  # both set: both follow
    assert [k for k, _, _ in both] == ["data.train.size", "data.train.mosaic.size"]
    assert keys({"type": "TiledDataset", "tile_size": [256, 256]}) == [("data.train.tile_size", [256, 256], 320)]
    assert keys({"type": "CocoDataset", "pipeline": [{"type": "HorizontalFlip"}]}) == []


def test_a_model_name_as_config_becomes_the_packaged_config_and_every_word_is_kept(ds, capsys):
    """`detkit train yolov8n.pt data=... epochs=2 imgsz=96`: the command in detkit's words trains yolo_n_coco
    (the model name is not kept) with every translated word, imgsz's keys included."""
    lines = _refused(train_cli.main, ["yolov8n.pt", f"data={ds}", "epochs=2", "imgsz=96"], capsys)
    assert lines[0] == (
        "detkit train: error: yolov8n.pt is Ultralytics' model name; detkit's: CONFIG yolo_n_coco (YOLOv8n's layout; "
        "its weights convert with `detkit convert-weights --from ultralytics`)"
    )
    assert lines[-1] == (
        f"detkit train: in detkit's words: detkit train yolo_n_coco --data {ds} --set train.max_epochs=2 "
        "data.train.size=96 data.val.pipeline.0.size=96"
    )
    lines = _refused(train_cli.main, ["yolov8x.yaml", "epochs=1"], capsys)
    assert "CONFIG yolo_l_coco (detkit packages no x-scale detection config; the nearest: YOLOv8l's layout" in lines[0]
    lines = _refused(train_cli.main, ["yolov8m-seg", "epochs=1"], capsys)
    assert "CONFIG yolo_s_seg_coco (detkit packages no m-scale seg config" in lines[0]
    assert lines[-1].endswith("detkit train yolo_s_seg_coco --set train.max_epochs=1")


@pytest.mark.parametrize(
    "argv, command",
    [
        (["resume", "model=runs/A/latest.pth"], "detkit train runs/A/config.yaml --resume"),
        (["resume=True", "model=runs/A/epoch_3.pth"], "detkit train runs/A/config.yaml --resume runs/A/epoch_3.pth"),
        (["model=runs/A/best.pth", "epochs=3"], "detkit train runs/A/config.yaml --load-from runs/A/best.pth --set"),
    ],
)
def test_resume_and_a_detkit_checkpoint_as_model_name_the_runs_config(argv, command, capsys):
    lines = _refused(train_cli.main, argv, capsys)
    assert lines[-1].startswith(f"detkit train: in detkit's words: {command}"), lines


def test_resume_from_a_weights_only_checkpoint_points_to_latest_or_to_load_from(tmp_path, capsys):
    """best.pth holds weights only (no optimizer / RNG state): resume from latest.pth beside it, else --load-from."""
    import torch

    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": {}, "meta": {}}, run / "best.pth")
    torch.save({"model": {}, "meta": {}, "optimizer": {}, "rng": {}}, run / "epoch_3.pth")
    words = f"detkit train: in detkit's words: detkit train {run / 'config.yaml'}"
    lines = _refused(train_cli.main, ["resume", f"model={run / 'epoch_3.pth'}"], capsys)
    assert lines[-1] == f"{words} --resume {run / 'epoch_3.pth'}"  # a training state: resumed from it
    lines = _refused(train_cli.main, ["resume", f"model={run / 'best.pth'}"], capsys)
    assert lines[-1] == f"{words} --load-from {run / 'best.pth'}"  # (no --resume)
    assert lines[0].endswith(
        f"{run / 'best.pth'} holds weights only, not a training state, and {run / 'latest.pth'} is not there: it "
        f"cannot be resumed; start a new run from its weights with --load-from {run / 'best.pth'}"
    )
    torch.save({"model": {}, "meta": {}, "optimizer": {}, "rng": {}}, run / "latest.pth")
    lines = _refused(train_cli.main, ["resume", f"model={run / 'best.pth'}"], capsys)
    assert lines[-1] == f"{words} --resume"
    assert "holds weights only, not a training state: the run resumes from its folder's latest.pth" in lines[0]
    lines = _refused(train_cli.main, ["resume", "model=runs/A/best.pth"], capsys)  # not there: its name tells
    assert lines[-1] == "detkit train: in detkit's words: detkit train runs/A/config.yaml --resume"


def test_resume_of_an_ultralytics_checkpoint_says_it_starts_a_new_run(capsys):
    lines = _refused(train_cli.main, ["resume", "model=runs/detect/train/weights/last.pt"], capsys)
    assert (
        "detkit resumes its own runs only (RUN/config.yaml --resume); an Ultralytics .pt starts a new one" in lines[0]
    )
    assert "--load-from last_detkit.pth (Ultralytics weights: convert them first" in lines[1]


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> Path:
    """A checkpoint that stores its config (a narrow Faster R-CNN: model.box_head's test settings)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "track"))
    from tiny_detector import save_tiny_detector

    return save_tiny_detector(tmp_path_factory.mktemp("ckpt") / "m.pth")


def test_eval_answers_ultralytics_val_words_for_the_config_the_checkpoint_holds(stored, ds, capsys, monkeypatch):
    from detkit.cli import eval as eval_cli

    monkeypatch.setattr(sys, "argv", ["detkit eval"])
    lines = _refused(eval_cli.main, ["-", str(stored), "conf=0.25", "imgsz=96", "batch=4"], capsys)
    assert lines[0].endswith(
        "conf=0.25 is Ultralytics' spelling; detkit's: --set model.box_head.score_thr=0.25 (now 0.05)"
    )
    assert "--set 'data.val.pipeline.0.short_sizes=[96]'" in lines[1] and "data.train" not in lines[1]
    assert "--set data.val_batch_size=4" in lines[2]
    assert lines[-1] == (
        f"detkit eval: in detkit's words: detkit eval - {stored} --set model.box_head.score_thr=0.25 "
        "'data.val.pipeline.0.short_sizes=[96]' data.val_batch_size=4"
    )
    (line, whole) = _refused(eval_cli.main, ["-", str(stored), "--batch", "4"], capsys)
    assert (
        "--batch 4 is Ultralytics' spelling; detkit's: --set data.val_batch_size=4" in line
        and "unrecognized" not in line
    )
    assert whole.endswith(f"detkit eval - {stored} --set data.val_batch_size=4")
    lines = _refused(eval_cli.main, [f"model={stored}", f"data={ds}", "split=test", "save_json", "iou=0.6"], capsys)
    assert lines[-1] == (
        f"detkit eval: in detkit's words: detkit eval - {stored} --data {ds} --split test --save-json predictions.json "
        "--set model.box_head.nms_thr=0.6"
    )
    lines = _refused(eval_cli.main, ["yolo_n_coco", str(stored), "epochs=3", "conf=0.1"], capsys)
    assert "epochs=3 is Ultralytics' spelling; detkit's: a training setting: detkit eval does not train" in lines[0]
    assert "--set model.head.score_thr=0.1 (now 0.001)" in lines[1]


@pytest.mark.parametrize(
    "word, answer",
    [
        ("iou=0.5", "iou=0.5 is Ultralytics' option; detkit's: --set model.head.nms_thr=0.5 (the NMS IoU of the YOLO"),
        (
            "classes=0",
            "classes=0 is Ultralytics' option; not offered: infer keeps every class; filter predictions.json",
        ),
        ("save_txt=True", "save_txt=True is Ultralytics' option; not needed: infer always writes predictions.json"),
        ("--save-txt", "--save-txt is Ultralytics' option; not needed: infer always writes predictions.json"),
        ("max_det=5", "detkit's: --set model.head.max_per_img=5"),
        ("--augment", "detkit's: --tta"),
        ("save_txt", "save_txt is Ultralytics' option; not needed: infer always writes predictions.json"),  # bare
        ("augment", "augment is Ultralytics' option; detkit's: --tta"),
        ("show", "show is Ultralytics' option; not offered: infer opens no window"),
    ],
)
def test_infer_answers_more_ultralytics_words(word, answer, capsys, monkeypatch):
    from detkit.cli import infer as infer_cli

    monkeypatch.setattr(sys, "argv", ["detkit infer"])
    (line,) = _refused(infer_cli.main, ["-", "m.pth", "a.png", word, "b.png"], capsys)
    assert answer in line and "unrecognized" not in line


def test_infer_answers_bare_ultralytics_words_among_others_but_keeps_an_input_of_that_name(
    tmp_path, capsys, monkeypatch
):
    from detkit.cli import infer as infer_cli

    monkeypatch.setattr(sys, "argv", ["detkit infer"])
    (line,) = _refused(infer_cli.main, ["-", "m.pth", "a.png", "conf=0.3", "save_txt", "save_conf", "half"], capsys)
    assert "conf=0.3 is Ultralytics' option; detkit's: --score-thr 0.3" in line
    assert "save_txt save_conf are Ultralytics' options; not needed: infer always writes predictions.json" in line
    assert "half is Ultralytics' option; not offered: the model runs in float32" in line
    monkeypatch.chdir(tmp_path)
    (tmp_path / "show").mkdir()  # a folder of images named like the word: an input
    assert [given for given, *_ in infer_cli._foreign_words(["-", "m.pth", "show", "save"])] == ["save"]
