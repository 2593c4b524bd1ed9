"""tools/infer.py: images, a corrupt file and a video in a folder; drawn outputs, predictions.json, a summary;
semantic models write label maps; tiling from the command line."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from torch import nn

import detkit
from detkit.config import load_config

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/faster_rcnn/faster_rcnn_r18_fpn_shapes.yaml"
# a narrow model (random weights): fast on a shared CPU
TINY = [
    "model.neck.out_channels=32",
    "model.rpn_head.in_channels=32",
    "model.box_head.in_channels=32",
    "model.box_head.representation_size=64",
    "model.rpn_head.pre_nms_top_n_test=100",
    "model.rpn_head.post_nms_top_n_test=50",
    "data.val.pipeline=[{type: ResizeShortestEdge, short_sizes: [64], max_size: 128}]",
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    cfg = load_config(CONFIG, TINY)
    model = detkit.build_model(cfg, class_names=["a", "b"])
    with torch.no_grad():
        model.box_head.cls_score.bias[:-1] += 4.0  # random weights, but detections above the threshold
    path = tmp_path_factory.mktemp("ckpt") / "model.pth"
    torch.save(
        {"model": model.state_dict(), "meta": {"config": cfg, "class_names": ["a", "b"], "cat_ids": [3, 8]}}, path
    )
    return path


def _write_video(path, n=10, size=(96, 96), fourcc="mp4v"):
    rng = np.random.default_rng(1)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 5.0, (size[1], size[0]))
    assert writer.isOpened()
    for i in range(n):
        frame = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
        cv2.rectangle(frame, (10 + 4 * i, 20), (50 + 4 * i, 60), (255, 255, 255), -1)
        writer.write(frame)
    writer.release()


def _frame_count(path):
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def _infer(*args):
    return subprocess.run(
        [sys.executable, str(ROOT / "tools/infer.py"), *map(str, args)], capture_output=True, text=True, timeout=400
    )


def test_folder_with_images_video_and_corrupt_file(checkpoint, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.png", "sub/b.jpg"):
        cv2.imwrite(str(src / name), rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
    (src / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    _write_video(src / "clip.mp4")
    out = tmp_path / "out"
    proc = _infer("-", checkpoint, src, "--out-dir", out, "--device", "cpu", "--batch-size", "3", "--draw-thr", "0.5")
    assert proc.returncode == 0, proc.stderr
    assert "2 images processed, 1 video (10 frames) processed, 1 unreadable skipped" in proc.stdout
    assert "broken.jpg" in proc.stdout + proc.stderr
    assert "\r" not in proc.stderr and "img/s" not in proc.stderr  # no progress frames when not a terminal
    assert (out / "a.jpg").is_file() and (out / "b.jpg").is_file()
    assert _frame_count(out / "clip.mp4") == 10  # the drawn video keeps every frame
    images = json.loads((out / "images.json").read_text())
    assert len(images) == 12 and sum("frame" in im for im in images) == 10
    assert sorted({im["drawn"] for im in images}) == ["a.jpg", "b.jpg", "clip.mp4"]  # each record's drawing
    preds = json.loads((out / "predictions.json").read_text())
    assert preds and {p["category_id"] for p in preds} <= {3, 8}  # the dataset's ids, not labels
    assert all({3: "a", 8: "b"}[p["category_id"]] == p["category_name"] for p in preds)
    assert {p["image_id"] for p in preds} <= {im["id"] for im in images}
    # the summary says how many detections were saved and drawn, and at which thresholds
    drawn = sum(p["score"] >= 0.5 for p in preds)
    assert 0 < drawn < len(preds)
    assert (
        f"{len(preds)} detections (score >= the config's test threshold) -> {out / 'predictions.json'}; "
        f"{drawn} drawn (score >= --draw-thr 0.5) -> {out}"
    ) in proc.stdout
    # the results load into pycocotools against a ground truth naming the same images
    from pycocotools.coco import COCO

    gt = COCO()
    gt.dataset = {"images": images, "annotations": [], "categories": [{"id": 3, "name": "a"}, {"id": 8, "name": "b"}]}
    gt.createIndex()
    res = gt.loadRes(str(out / "predictions.json"))
    assert len(res.getAnnIds()) == len(preds)


def test_no_draw_avi_and_tiles(checkpoint, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    _write_video(src / "clip.avi", n=4, size=(64, 80), fourcc="MJPG")
    cv2.imwrite(str(src / "big.png"), np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8))
    out = tmp_path / "out"
    rc = _load_tool().main(
        [
            "-",
            str(checkpoint),
            str(src / "*.*"),
            "--out-dir",
            str(out),
            "--device",
            "cpu",
            "--no-draw",
            "--tile",
            "96,96",
            "--tile-overlap",
            "0.25",
            "--score-thr",
            "0.2",
        ]
    )
    assert rc == 0
    assert "1 image processed, 1 video (4 frames) processed, 0 unreadable skipped" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["images.json", "predictions.json"]  # no drawings
    assert {im["drawn"] for im in json.loads((out / "images.json").read_text())} == {""}
    preds = json.loads((out / "predictions.json").read_text())
    assert all(p["score"] >= 0.2 for p in preds)
    big = [p for p in preds if p["file_name"].endswith("big.png")]
    assert big and max(p["bbox"][0] + p["bbox"][2] for p in big) > 96  # boxes beyond the first tile


def test_bad_inputs_are_one_line_errors(checkpoint, tmp_path, capsys):
    tool = _load_tool()
    assert tool.main(["-", str(checkpoint), str(tmp_path / "nothing_here")]) == 2
    assert "no such file" in capsys.readouterr().err
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), np.zeros((32, 32, 3), np.uint8))
    assert tool.main(["-", str(checkpoint), str(img), "--tile", "12,a"]) == 2
    assert "tile must be" in capsys.readouterr().err
    assert tool.main(["-", str(tmp_path / "none.pth"), str(img)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


class FakeSegmentor(nn.Module):
    """Labels each pixel 0 (dark), 1 or 2 (bright): what a Segmentor's predict returns."""

    class_names = ["bg", "mid", "bright"]
    cat_ids = None

    def predict(self, batch, score_thr=None):
        out = []
        for img, (h, w) in zip(batch["images"], batch["image_sizes"]):
            g = img[:, :h, :w].float().mean(0)
            out.append({"sem_seg": (g > 80).long() + (g > 200).long()})
        return out


def _load_tool():
    sys.path.insert(0, str(ROOT / "tools"))
    spec = importlib.util.spec_from_file_location("infer_tool", ROOT / "tools/infer.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_semantic_model_writes_label_maps(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(detkit, "init_model", lambda *a, **k: FakeSegmentor(), raising=False)
    img = np.zeros((40, 60, 3), np.uint8)
    img[:, 20:40] = 128
    img[:, 40:] = 255
    cv2.imwrite(str(tmp_path / "s.png"), img)
    _write_video(tmp_path / "v.mp4", n=3, size=(32, 48))
    out = tmp_path / "out"
    torch.save({"model": {}}, tmp_path / "ckpt.pth")  # checked by the tool, then given to the fake init_model
    rc = _load_tool().main(
        ["-", str(tmp_path / "ckpt.pth"), str(tmp_path / "s.png"), str(tmp_path / "v.mp4"), "--out-dir", str(out)]
    )
    assert rc == 0
    assert "semantic maps" in capsys.readouterr().out
    labels = cv2.imread(str(out / "s_labels.png"), cv2.IMREAD_UNCHANGED)
    assert labels.shape == (40, 60) and (labels[:, :20] == 0).all() and (labels[:, 20:40] == 1).all()
    assert (labels[:, 40:] == 2).all()
    colour = cv2.imread(str(out / "s_sem.png"))
    assert len(np.unique(colour.reshape(-1, 3), axis=0)) == 3  # one colour per class
    assert (out / "s.jpg").is_file() and _frame_count(out / "v.mp4") == 3
    assert not (out / "predictions.json").exists()  # no COCO boxes for a semantic model
    (record,) = [r for r in json.loads((out / "images.json").read_text()) if r["file_name"].endswith("s.png")]
    assert (record["drawn"], record["labels"]) == ("s.jpg", "s_labels.png")  # images.json names both


def test_ctrl_c_keeps_the_predictions_done_so_far(checkpoint, tmp_path, monkeypatch, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        cv2.imwrite(str(src / f"{i}.png"), np.full((64, 64, 3), 40 * i, np.uint8))
    predict, calls = detkit.predict, []

    def interrupted_after_two(model, images, **kw):
        calls.append(1)
        if len(calls) > 2:
            raise KeyboardInterrupt
        return predict(model, images, **kw)

    monkeypatch.setattr(detkit, "predict", interrupted_after_two)
    rc = _load_tool().main(["-", str(checkpoint), str(src), "--out-dir", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert rc == 130 and "2 images processed" in out and "stopped by Ctrl-C" in err, (out, err)
    done = {Path(r["file_name"]).name for r in json.loads((tmp_path / "out" / "predictions.json").read_text())}
    assert done <= {"0.png", "1.png"} and len(list((tmp_path / "out").glob("*.jpg"))) == 2


def test_a_library_caller_still_gets_the_interrupt(checkpoint, tmp_path, monkeypatch):
    from detkit.inference.files import InferenceInterrupted, run_inference

    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((64, 64, 3), np.uint8))
    model = detkit.init_model(None, checkpoint, device="cpu")

    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(detkit, "predict", stop)
    with pytest.raises(KeyboardInterrupt) as e:  # a loop calling run_inference stops too
        run_inference(model, [tmp_path / "a.png"], tmp_path / "out", progress=False)
    assert isinstance(e.value, InferenceInterrupted) and e.value.summary["interrupted"]
    assert e.value.summary["images"] == 0


def test_set_overrides_the_config_as_eval_does(checkpoint, tmp_path, capsys):
    """--set K=V changes the config infer builds (CONFIG '-': the one stored in the checkpoint), checked as eval's."""
    img = tmp_path / "in" / "x.png"
    img.parent.mkdir()
    cv2.imwrite(str(img), np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8))
    tool = _load_tool()
    counts = {}
    for name, extra in (
        ("default", []),
        ("set", ["--set", "model.box_head.max_per_img=2", "model.box_head.nms_thr=0.3"]),
    ):
        out = tmp_path / name
        assert (
            tool.main(["-", str(checkpoint), str(img), "--out-dir", str(out), "--device", "cpu", "--no-draw", *extra])
            == 0
        )
        counts[name] = len(json.loads((out / "predictions.json").read_text()))
    assert counts["default"] > 2 and counts["set"] == 2
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump(load_config(CONFIG, TINY)))
    out = tmp_path / "file"
    assert tool.main([str(cfg_file), str(checkpoint), str(img), "--out-dir", str(out), "--device", "cpu",
                      "--no-draw", "--set", "model.box_head.max_per_img=1"]) == 0  # fmt: skip
    assert len(json.loads((out / "predictions.json").read_text())) == 1
    capsys.readouterr()
    assert tool.main(["-", str(checkpoint), str(img), "--set", "model.box_head.nms_thresh=0.3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "nms_thresh" in err and "nms_thr" in err and "\n" not in err


def test_a_classifier_without_readable_input_keeps_its_csv_and_wording(tmp_path):
    """No readable input: a classifier still writes predictions.csv (header only), never predictions.json, and
    the summary speaks of classes, not of detections drawn."""
    from detkit.inference.files import format_summary, run_inference

    torch.manual_seed(0)
    model = detkit.build_model(load_config("resnet18_shapes"), class_names=["a", "b", "c"]).eval()
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"not an image")
    summary = run_inference(model, [bad], tmp_path / "out", progress=False, log=lambda _: None)
    assert (tmp_path / "out" / "predictions.csv").is_file()
    assert not (tmp_path / "out" / "predictions.json").exists()
    header = (tmp_path / "out" / "predictions.csv").read_text().splitlines()
    assert header == ["file,frame,label_1,score_1,label_2,score_2,label_3,score_3,drawn"]
    text = format_summary(summary)
    assert "detections" not in text and "score >=" not in text, text
    assert "top-3 classes and probabilities of 0 -> " in text and "predictions.csv" in text, text


def test_files_of_the_users_in_the_out_dir_are_never_written_over(checkpoint, tmp_path, capsys):
    """--out-dir holding a file of the user's that a drawing would replace (their own a.jpg, input a.png): one
    line, exit 2, the file untouched; the same command again into infer's own out-dir runs."""
    img = tmp_path / "in" / "a.png"
    img.parent.mkdir()
    cv2.imwrite(str(img), np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8))
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "a.jpg").write_bytes(b"my holiday photo")
    tool = _load_tool()
    assert tool.main(["-", str(checkpoint), str(img), "--out-dir", str(mine), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds a.jpg, which this run would replace" in err and len(err.splitlines()) == 1
    assert (mine / "a.jpg").read_bytes() == b"my holiday photo" and not (mine / "images.json").exists()
    out = tmp_path / "out"
    for _ in range(2):  # a second run writes over its own drawing
        assert tool.main(["-", str(checkpoint), str(img), "--out-dir", str(out), "--device", "cpu"]) == 0
    assert (out / "a.jpg").is_file()


def test_images_json_gives_each_inputs_absolute_path_for_tools_run_elsewhere(tmp_path, monkeypatch, capsys):
    """infer run inside the data folder on relative paths; analyze, run from another folder, still finds the
    images (before: file_name only, relative to where infer ran, and worst/ drawn on grey)."""
    import warnings

    from detkit.analysis.semantic import analyze_semantic
    from detkit.analysis.semantic_inputs import LabelReading

    monkeypatch.setattr(detkit, "init_model", lambda *a, **k: FakeSegmentor(), raising=False)
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    (data / "gt").mkdir(parents=True)
    elsewhere.mkdir()
    cv2.imwrite(str(data / "s.png"), np.full((40, 60, 3), 255, np.uint8))  # predicted all 2 (bright)
    cv2.imwrite(str(data / "gt" / "s.png"), np.ones((40, 60), np.uint8))  # truth: all 1, every pixel wrong
    _write_video(data / "v.mp4", n=2, size=(32, 48))
    torch.save({"model": {}}, data / "ckpt.pth")
    monkeypatch.chdir(data)
    assert _load_tool().main(["-", "ckpt.pth", "s.png", "v.mp4", "--out-dir", "out", "--no-draw"]) == 0
    records = json.loads((data / "out" / "images.json").read_text())
    assert [(r["file_name"], r["path"]) for r in records] == [("s.png", str((data / "s.png").resolve()))] + [
        ("v.mp4", str((data / "v.mp4").resolve()))
    ] * 2  # file_name as given (a documented contract), path absolute
    monkeypatch.chdir(elsewhere)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "no longer readable ... drawn on grey" would fail here
        out = analyze_semantic(data / "gt", data / "out", tmp_path / "analysis", LabelReading(["bg", "mid", "bright"]))
    assert out["scores"][0].pair.image == "s.png" and len(out["files"]) == 7  # 5 tables, a drawing, summary
    drawn = cv2.imread(str(tmp_path / "analysis" / "worst" / "01_s.jpg"))
    assert drawn[60:, :100].mean() > 180  # the ground truth over the white image (on grey: about 133)
