"""``explain --target-class / --box`` (run in-process): the detection a box picked, printed and in
explanations.json; the score threshold's value in the summary; each mistake one line and exit status 2."""

import json

import cv2
import pytest
import torch
from torchvision.ops import box_iou

import detkit

NAMES = ["circle", "square", "triangle"]


def _save(model, path, names):
    torch.save({"model": model.state_dict(), "meta": {"config": model.cfg, "class_names": names}}, path)
    return path


@pytest.fixture(scope="module")
def files(yolo, make_image, tmp_path_factory):
    """A checkpoint of the tiny YOLO (classes circle, square, triangle) and two images: 96x128 and 96x160."""
    root = tmp_path_factory.mktemp("choice")
    images = []
    for name, size in (("small.png", (96, 128)), ("wide.png", (96, 160))):
        cv2.imwrite(str(root / name), cv2.cvtColor(make_image(2, size), cv2.COLOR_RGB2BGR))
        images.append(root / name)
    return dict(yolo=_save(yolo, root / "yolo.pth", NAMES), images=images, root=root)


def _error_line(run, expected: str) -> str:
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    assert expected in lines[0], lines[0]
    return lines[0]


def test_box_picks_a_detection_and_says_which(files, yolo, tool_in_process, tmp_path):
    small = files["images"][0]
    image = cv2.cvtColor(cv2.imread(str(small)), cv2.COLOR_BGR2RGB)
    plain = detkit.predict(yolo, image, score_thr=0.0)
    order = torch.argsort(plain["scores"], descending=True, stable=True)
    asked = torch.tensor([2.0, 1.0, 60.0, 45.0])
    ious = box_iou(asked[None], plain["boxes"][order])[0]
    expected = int(order[int(torch.argmax(ious))])
    out = tmp_path / "out"
    args = ["-", files["yolo"], small, "--out-dir", out, "--device", "cpu", "--method", "hirescam"]
    run = tool_in_process("explain", [*args, "--score-thr", "0", "--box", "2,1,60,45"])
    assert run.returncode == 0, run.stderr
    assert "scoring > --score-thr 0 of highest IoU with --box 2,1,60,45" in run.stdout, run.stdout
    assert f"{small}: --box 2,1,60,45 -> detection {expected} ('" in run.stdout, run.stdout
    assert f"IoU {float(ious.max()):.3f}" in run.stdout, run.stdout
    (record,) = json.loads((out / "explanations.json").read_text())["images"][0]["maps"]
    assert record["detection"] == expected and record["iou"] == pytest.approx(float(ious.max()))


def test_summary_gives_the_threshold_and_the_class(files, tool_in_process, tmp_path):
    args = ["-", files["yolo"], files["images"][0], "--out-dir", tmp_path / "out", "--device", "cpu", "--max-dets", "2"]
    run = tool_in_process("explain", args)
    assert run.returncode == 0, run.stderr
    assert "detections scoring > the config's test threshold 0.001) ->" in run.stdout, run.stdout
    run = tool_in_process("explain", [*args, "--score-thr", "0", "--target-class", "Square"])
    assert run.returncode == 0, run.stderr
    assert "detections of class 'square' scoring > --score-thr 0)" in run.stdout, run.stdout
    maps = json.loads((tmp_path / "out" / "explanations.json").read_text())["images"][0]["maps"]
    assert maps and {m["class_name"] for m in maps} == {"square"}


def test_a_box_outside_one_image_names_it(files, tool_in_process, tmp_path):
    """The box lies inside the wide image only: the small one (second) is named, the wide one's outputs stay
    listed as explain's own, so the same command with another box runs over them."""
    small, wide = files["images"]
    out = tmp_path / "out"
    args = ["-", files["yolo"], wide, small, "--out-dir", out, "--device", "cpu", "--score-thr", "0"]
    line = _error_line(tool_in_process("explain", [*args, "--box", "140,10,155,40"]), f"{small}: the box 140,10,155,40")
    assert "overlaps none of the" in line and "in this 128x96 image" in line, line
    assert [r["png"] for r in json.loads((out / "explanations.json").read_text())["images"]] == ["wide.png"]
    assert tool_in_process("explain", [*args, "--box", "10,10,40,40"]).returncode == 0


def test_mistakes_are_one_line_and_exit_2(files, classifier, tool_in_process, tmp_path):
    args = ["-", files["yolo"], files["images"][0], "--out-dir", tmp_path / "out", "--device", "cpu"]
    line = _error_line(tool_in_process("explain", [*args, "--target-class", "cirle"]), "has no class 'cirle'")
    assert "(nearest: circle); its classes: 0 circle, 1 square, 2 triangle" in line
    _error_line(tool_in_process("explain", [*args, "--target-class", "7"]), "is not a class of the model (3 classes")
    _error_line(tool_in_process("explain", [*args, "--box", "1,2,3"]), "--box must be four numbers x1,y1,x2,y2")
    _error_line(tool_in_process("explain", [*args, "--box", "5,5,1,9"]), "needs x2 > x1 and y2 > y1")
    line = _error_line(tool_in_process("explain", [*args, "--box", "200,1,260,40"]), f"{files['images'][0]}: the box")
    assert "detection(s) scoring > the config's test threshold 0.001 in this 128x96 image" in line, line
    classifier_ck = _save(classifier, tmp_path / "cls.pth", classifier.class_names)
    cls_args = ["-", classifier_ck, files["images"][0], "--out-dir", tmp_path / "cls", "--device", "cpu"]
    _error_line(tool_in_process("explain", [*cls_args, "--box", "1,1,9,9"]), "--box needs a detector")
    assert not (tmp_path / "out").exists() and not (tmp_path / "cls").exists()
