"""tools/model_stats.py: parameters equal the built model's, per-part FLOPs from FlopCounterMode."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/faster_rcnn/faster_rcnn_r18_fpn_shapes.yaml"
sys.path.insert(0, str(ROOT / "tools"))
_spec = importlib.util.spec_from_file_location("detkit_tool_model_stats", ROOT / "tools" / "model_stats.py")
stats_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stats_tool)


def test_parameters_equal_the_built_model(capsys):
    assert stats_tool.main([str(CONFIG), "--size", "128", "128", "--num-classes", "4"]) == 0
    out = capsys.readouterr().out
    import detkit
    from detkit.config import load_config

    model = detkit.build_model(load_config(CONFIG), class_names=["a", "b", "c", "d"])
    total = sum(p.numel() for p in model.parameters())
    assert re.search(rf"^total\s+{total}\s", out, re.M), out
    parts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s", out, re.M) if m.group(1) != "total"}
    assert set(parts) == {"backbone", "neck", "rpn_head", "box_head"} and sum(parts.values()) == total
    assert parts["backbone"] == sum(p.numel() for p in model.backbone.parameters())
    assert "3x128x128" in out


def test_flops_per_part():
    import detkit
    from detkit.benchmark.model_stats import model_stats
    from detkit.config import load_config

    model = detkit.build_model(load_config(CONFIG), class_names=["a", "b"])
    rows, _total, hw = model_stats(model, (100, 130), num_rois=0)
    assert hw == (128, 160)  # rounded up to the size divisor
    by = {r.name: r for r in rows}
    assert by["box_head"].flops is None and all(by[k].flops > 0 for k in ("backbone", "neck", "rpn_head"))
    rows2, _, _ = model_stats(model, (256, 320), num_rois=10)
    by2 = {r.name: r for r in rows2}
    # convolutions scale with the input area (x4); the box head runs on 10 RoIs
    assert by2["backbone"].flops / by["backbone"].flops == pytest.approx(4.0, rel=0.02)
    width = model.neck.out_channels  # the FPN's channels (128 in the shapes config)
    assert by2["box_head"].flops > 2 * 10 * width * 7 * 7 * 1024  # fc6 alone: 10 RoIs of width x 7 x 7 -> 1024
    # the first conv of ResNet: 7x7x3 -> 64 at stride 2, counted as 2 FLOPs per multiply-add
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as c, torch.no_grad():
        model.backbone.conv1(torch.zeros(1, 3, 128, 160))
    assert c.get_total_flops() == 2 * 64 * 3 * 7 * 7 * 64 * 80


def test_null_num_classes_without_data_is_one_line_error(tmp_path, capsys):
    rc = stats_tool.main([str(CONFIG), "--set", f"data.train.ann_file={tmp_path / 'none.json'}"])
    err = capsys.readouterr().err
    assert rc == 2 and "--num-classes" in err and err.count("\n") == 1


def test_a_missing_init_checkpoint_is_not_read(tmp_path, capsys):
    """The statistics are of the architecture: a backbone init_checkpoint that moved away does not matter."""
    gone = tmp_path / "moved.pth"
    argv = [str(CONFIG), "--size", "64", "64", "--num-classes", "2", "--set", f"model.backbone.init_checkpoint={gone}"]
    assert stats_tool.main(argv) == 0
    assert "total" in capsys.readouterr().out


def test_null_num_classes_of_a_segmentor_is_counted_from_its_training_data(tmp_path, capsys):
    """A semantic dataset's classes (its classes file) as training takes them; before: 'the training annotation
    file (None) is not there' although the data was."""
    from detkit.data.synthetic import make_shapes

    make_shapes(tmp_path, num_train=1, num_val=0, size=(64, 64), seed=0)
    config = str(ROOT / "configs/seg/semfpn_r18_shapes.yaml")
    sets = [f"data.train.img_dir={tmp_path / 'train'}", f"data.train.mask_dir={tmp_path / 'sem/train'}"]
    sets.append(f"data.train.classes={tmp_path / 'sem/classes.txt'}")
    assert stats_tool.main([config, "--size", "64", "64", "--set", *sets]) == 0
    assert "(5 classes)" in capsys.readouterr().out  # background + the 4 shapes


def test_null_num_classes_reads_only_the_json_of_a_coco_dataset(tmp_path, capsys):
    """The categories of data.train.ann_file: its image folder need not exist (stats on another machine)."""
    import json

    ann = tmp_path / "ann.json"
    ann.write_text(
        json.dumps(
            {"images": [], "annotations": [], "categories": [{"id": 2, "name": "dog"}, {"id": 1, "name": "cat"}]}
        )
    )
    sets = [f"data.train.ann_file={ann}", f"data.train.img_dir={tmp_path / 'no_images'}"]
    assert stats_tool.main([str(CONFIG), "--size", "64", "64", "--set", *sets]) == 0
    assert "(2 classes)" in capsys.readouterr().out


def test_a_classifier_is_measured_at_224_without_the_roi_note(capsys):
    assert stats_tool.main([str(ROOT / "configs/cls/resnet50_imagenet.yaml")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "3x224x224 input" in last and "RoI" not in last
