"""tools/eval.py and tools/infer.py with --tta, --tta-merge, --ensemble: metrics, predictions, one-line errors."""

import json

import pytest
import torch
import yaml

import detkit
from detkit.cli import eval as eval_tool  # tools/eval.py and tools/infer.py run these modules' main
from detkit.cli import infer as infer_tool
from detkit.cli.make_shapes import main as make_shapes
from detkit.config import load_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Three 96x128 shapes images and checkpoints of a tiny random YOLO (scores kept from 0): ``a.pth``, ``a2.pth``
    (the same weights) and ``other.pth`` (other class order). The ground truth of ``model_gt.json`` is the
    model's own three best boxes per image: its AP is 1, and merged views change it."""
    folder = tmp_path_factory.mktemp("tta")
    assert make_shapes([str(folder / "shapes"), "--num-train", "1", "--num-val", "3", "--size", "96,128"]) == 0
    classes = (folder / "shapes" / "classes.txt").read_text().split()
    overrides = [
        "model.backbone={type: CSPDarknet, depth_multiple: 0.33, width_multiple: 0.125}",
        "model.head.score_thr=0.0",
        "data.val.pipeline=[{type: LetterBox, size: 128}]",
        f"data.val.ann_file={folder / 'model_gt.json'}",
        f"data.val.img_dir={folder / 'shapes' / 'val'}",
    ]
    torch.manual_seed(0)
    cfg = load_config("yolo_n_shapes", overrides)
    model = detkit.build_model(cfg, class_names=classes).eval()
    model.cfg = cfg
    state = model.state_dict()
    gt = json.loads((folder / "shapes" / "val.json").read_text())
    cat_ids = sorted(c["id"] for c in gt["categories"])
    gt["annotations"] = []
    for image in gt["images"]:
        pred = detkit.predict(model, str(folder / "shapes" / "val" / image["file_name"]))
        for (x0, y0, x1, y1), label in zip(pred["boxes"][:3].tolist(), pred["labels"][:3].tolist()):
            box = dict(bbox=[x0, y0, x1 - x0, y1 - y0], area=(x1 - x0) * (y1 - y0), iscrowd=0)
            gt["annotations"].append(
                dict(id=len(gt["annotations"]) + 1, image_id=image["id"], category_id=cat_ids[label], **box)
            )
    (folder / "model_gt.json").write_text(json.dumps(gt))
    for name, names in (("a", classes), ("a2", classes), ("other", classes[::-1])):
        torch.save({"model": state, "meta": {"config": cfg, "class_names": names}}, folder / f"{name}.pth")
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    return folder


def _eval(run, *flags) -> dict:
    out = run / f"metrics_{len(list(run.glob('metrics_*')))}.json"
    assert (
        eval_tool.main([str(run / "config.yaml"), str(run / "a.pth"), "--device", "cpu", "--out", str(out), *flags])
        == 0
    )
    return json.loads(out.read_text())


def test_eval_with_tta_and_ensembles(run, capsys):
    plain = _eval(run)
    assert plain["bbox/AP50"] > 0
    for merge in ("wbf", "nms"):
        tta = _eval(run, "--tta", "--tta-scales", "0.8,1", "--tta-merge", merge, "--tta-iou", "0.55")
        assert set(tta) == set(plain) and all(-1 <= v <= 1 for v in tta.values())
        if merge == "wbf":  # fused boxes move off the model's own boxes, which are the ground truth here
            assert tta["bbox/AP"] < plain["bbox/AP"] == 1.0
    # the same weights twice, merged by NMS above any IoU of the model's own detections: the model's metrics
    twice = _eval(run, "--ensemble", str(run / "a2.pth"), "--tta-merge", "nms", "--tta-iou", "0.99")
    assert twice == pytest.approx(plain)
    assert "bbox/AP" in capsys.readouterr().out


def test_infer_with_tta_and_ensemble(run, capsys):
    image = run / "shapes" / "val" / "000001.png"
    out = run / "infer"
    assert infer_tool.main(["-", str(run / "a.pth"), str(image), "--out-dir", str(out), "--no-draw", "--tta"]) == 0
    tta = json.loads((out / "predictions.json").read_text())
    assert tta and {"bbox", "score", "category_id", "image_id"} <= set(tta[0])
    both = run / "infer2"
    flags = ["--ensemble", str(run / "a2.pth"), "--tta-merge", "nms", "--tta-iou", "0.99"]
    assert infer_tool.main(["-", str(run / "a.pth"), str(image), "--out-dir", str(both), "--no-draw", *flags]) == 0
    plain = run / "infer3"
    assert infer_tool.main(["-", str(run / "a.pth"), str(image), "--out-dir", str(plain), "--no-draw"]) == 0
    key = lambda r: (r["score"], r["category_id"], r["bbox"])  # noqa: E731
    assert sorted(json.loads((both / "predictions.json").read_text()), key=key) == sorted(
        json.loads((plain / "predictions.json").read_text()), key=key
    )
    capsys.readouterr()


def _one_line_error(capsys, tool, args, *expected):
    assert tool.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for text in expected:
        assert text in err, err


def test_mistakes_are_one_line_errors(run, capsys):
    cfg, ckpt, image = str(run / "config.yaml"), str(run / "a.pth"), str(run / "shapes" / "val" / "000001.png")
    out = ["--out-dir", str(run / "bad")]
    _one_line_error(capsys, infer_tool, [cfg, ckpt, image, *out, "--tta-scales", "1,2"], "--tta-scales", "add --tta")
    _one_line_error(capsys, infer_tool, [cfg, ckpt, image, *out, "--tta-merge", "nms"], "add --tta or --ensemble")
    _one_line_error(capsys, infer_tool, [cfg, ckpt, image, *out, "--tta", "--tile", "64,64"], "does not combine")
    _one_line_error(capsys, infer_tool, [cfg, ckpt, image, *out, "--tta", "--tta-scales", "0,1"], "--tta-scales")
    other = str(run / "other.pth")
    _one_line_error(
        capsys, infer_tool, [cfg, ckpt, image, *out, "--ensemble", other], ckpt, other, "same classes in the same order"
    )
    _one_line_error(capsys, eval_tool, [cfg, ckpt, "--device", "cpu", "--ensemble", other], ckpt, other, "classes")
    _one_line_error(capsys, eval_tool, [cfg, ckpt, "--ensemble", str(run / "missing.pth")], "missing.pth")
