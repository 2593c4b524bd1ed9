"""Habits of Ultralytics and torchvision users meet clear answers: draw_prediction's default threshold and its
PIL / path images, 8-bit data in uint16 arrays, folders and videos, Ultralytics keywords, tensors, a model called
with images, ``dir(detkit)``."""

import inspect
import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import detkit
from detkit.visualization import draw_prediction

CLASSES = ["a", "b"]


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), (5, 5), 0)
    cv2.circle(img, (30, 24), 12, (250, 20, 20), -1)
    return img


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in ("boxes", "scores", "labels"))


def test_draw_prediction_draws_from_0_3_and_takes_pil_images_and_paths(image, tmp_path):
    pred = {
        "boxes": torch.tensor([[5.0, 5.0, 30.0, 30.0], [35.0, 10.0, 60.0, 40.0]]),
        "scores": torch.tensor([0.9, 0.1]),
        "labels": torch.tensor([0, 1]),
    }
    default = draw_prediction(image, pred, CLASSES)
    assert np.array_equal(default, draw_prediction(image, pred, CLASSES, score_thr=0.3))
    assert not np.array_equal(default, draw_prediction(image, pred, CLASSES, score_thr=0.0))
    path = tmp_path / "img.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert np.array_equal(draw_prediction(Image.fromarray(image), pred, CLASSES), default)
    assert np.array_equal(draw_prediction(str(path), pred, CLASSES), default)
    assert np.array_equal(draw_prediction(path, pred, CLASSES), default)
    with pytest.raises(TypeError, match="draw_prediction: image must be an RGB numpy image .* PIL image or"):
        draw_prediction([image], pred, CLASSES)


def test_uint16_arrays_of_8_bit_data_warn_once_per_call(model, image):
    low = image.astype(np.uint16)
    with pytest.warns(UserWarning, match=r"2 uint16 image\(s\) hold values only up to 250 .*astype\(np.uint8\)") as rec:
        detkit.predict(model, [low, low])
    assert len([w for w in rec if issubclass(w.category, UserWarning)]) == 1
    assert rec[0].filename == __file__  # points at the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        detkit.predict(model, image.astype(np.uint16) * 257)  # true 16-bit data: no warning
        detkit.predict(model, np.zeros((32, 32, 3), np.uint16))  # black either way


def test_explain_and_draw_prediction_take_the_arrays_predict_takes(model, image):
    """A float image in 0..1 and a 16-bit image read as the uint8 one; uint16 of 8-bit values warns as predict."""
    pytest.importorskip("pytorch_grad_cam")
    pred = detkit.predict(model, image, score_thr=0.0)
    drawn = draw_prediction(image, pred, CLASSES, score_thr=0.0)
    explained = detkit.explain(model, image, score_thr=0.0, max_dets=1)
    low = image.astype(np.uint16)
    for other in (image.astype(np.float32) / 255.0, low * 257):
        assert same(detkit.predict(model, other, score_thr=0.0), pred)
        assert np.array_equal(draw_prediction(other, pred, CLASSES, score_thr=0.0), drawn)
        assert torch.equal(detkit.explain(model, other, score_thr=0.0, max_dets=1)["heatmaps"], explained["heatmaps"])
    for who, call in (
        ("draw_prediction", lambda: draw_prediction(low, pred, CLASSES)),
        ("explain", lambda: detkit.explain(model, low, max_dets=1)),
    ):
        with pytest.warns(UserWarning, match=rf"^{who}: 1 uint16 image\(s\) hold values only up to 250") as rec:
            call()
        assert [w.filename for w in rec if "uint16" in str(w.message)] == [__file__]  # once, at the caller's line
    with pytest.raises(ValueError, match=r"explain: a float32 numpy image must hold values in 0..1 or 0..255"):
        detkit.explain(model, image.astype(np.float32) - 128)


def test_a_folder_is_read_as_its_images_and_a_video_is_refused(model, image, tmp_path):
    for name in ("b.png", "a.JPG", ".hidden.png", "sub/c.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / name), image)
    (tmp_path / "notes.txt").write_text("not an image")
    got = detkit.predict(model, tmp_path, score_thr=0.0)
    want = detkit.predict(model, [tmp_path / "a.JPG", tmp_path / "b.png"], score_thr=0.0)
    assert isinstance(got, list) and len(got) == 2 and all(same(g, w) for g, w in zip(got, want))
    assert len(detkit.predict(model, str(tmp_path / "sub"))) == 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="folder .*empty holds no image"):
        detkit.predict(model, tmp_path / "empty")
    with pytest.raises(ValueError, match="is a folder inside a list"):
        detkit.predict(model, [tmp_path])
    with pytest.raises(ValueError, match=r"v.mp4 is a video; predict takes images.*detkit.track\(model, path\)"):
        detkit.predict(model, str(tmp_path / "v.mp4"))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"conf": 0.25}, r"conf: score_thr="),
        ({"iou": 0.5}, r"iou: .*model.head.nms_thr .*model.box_head.nms_thr"),
        ({"imgsz": 640}, r"imgsz: .*test pipeline .*data.val.pipeline.0.size"),
        ({"device": "cpu"}, r"device: .*init_model\(\.\.\., device="),
        ({"source": "a.jpg"}, r"source: the images argument"),
        ({"classes": [0]}, r"classes: filter the result"),
        ({"max_det": 5}, r"max_det: .*max_per_img"),
        ({"half": True}, r"half: not offered"),
        ({"verbose": True}, r"verbose: progress=True \(a progress bar on stderr"),
        ({"verbose": False}, r"verbose: progress=False \(no progress bar"),
        ({"save": True}, r"save: not offered: draw with detkit.visualization.draw_prediction"),
        ({"conf": 0.2, "nonsense": 1}, r"'conf', 'nonsense'.*\n  conf: score_thr=\n  nonsense: not an argument"),
    ],
)
def test_ultralytics_keywords_name_detkits_equivalent(model, image, kwargs, match):
    with pytest.raises(TypeError, match=r"predict\(\) got unexpected keyword argument\(s\) (.|\n)*" + match):
        detkit.predict(model, image, **kwargs)


def test_the_signature_stays_visible():
    params = inspect.signature(detkit.predict).parameters
    assert list(params)[:7] == ["model", "inputs", "score_thr", "batch_size", "tile", "channel_order", "tta"]
    assert params["progress"].default is None


def test_tensors_as_torchvision_gives_them(model, image):
    ref = detkit.predict(model, image, score_thr=0.0)
    chw = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    assert same(detkit.predict(model, chw, score_thr=0.0), ref)
    assert same(detkit.predict(model, torch.from_numpy(image), score_thr=0.0), ref)  # uint8 [H,W,3]
    assert same(detkit.predict(model, chw.double(), score_thr=0.0), ref)
    listed = detkit.predict(model, [chw, torch.from_numpy(image)], score_thr=0.0)
    batch = detkit.predict(model, torch.stack([chw, chw]), score_thr=0.0)
    assert isinstance(batch, list) and len(batch) == 2
    assert all(same(r, ref) for r in listed + batch)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda t: (t * 255).to(torch.uint8), r"uint8 tensor of shape \[3, 48, 64\] .* pass t.permute\(1, 2, 0\)"),
        (lambda t: t * 255, r"values in 0..1, got \d+..250; divide it by 255"),
        (lambda t: t - 0.5, r"values in 0..1, got -0.4\d*..0.4\d*; give it before Normalize"),
        (lambda t: t[0], r"float32 tensor of shape \[48, 64\] is not an image it takes; it takes a float tensor"),
        (lambda t: [t[None]], r"\[1, 3, 48, 64\] .*not inside a list"),
    ],
)
def test_other_tensors_name_the_accepted_forms(model, image, make, match):
    chw = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    with pytest.raises(ValueError, match=match):
        detkit.predict(model, make(chw))


@pytest.mark.parametrize(
    "given", [[torch.rand(3, 64, 64)], "a.jpg", (torch.rand(3, 64, 64),), torch.rand(1, 3, 64, 64)]
)
@pytest.mark.parametrize("train", [False, True])
def test_a_model_called_with_images_points_to_predict(model, given, train):
    model.train(train)
    try:
        with pytest.raises(TypeError, match=r"detkit models take a collated batch dict, got .*detkit.predict"):
            model(given)
    finally:
        model.eval()


def test_dir_lists_the_lazy_api():
    code = "import detkit; print(' '.join(dir(detkit)))"
    names = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    for name in ("init_model", "predict", "track", "explain", "load_config", "build_model", "load_checkpoint"):
        assert name in names


def test_a_glob_pattern_is_answered_with_the_folder_or_glob_glob(model, image, tmp_path):
    """predict does not expand patterns (a shell does, for `detkit infer`): the message says so, how many files
    the pattern matches and the two ways to give them; a file whose name has a * in it is still read."""
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / name), image)
    pattern = str(tmp_path / "*.png")
    with pytest.raises(
        OSError, match=r"\*\.png is a glob pattern, and predict does not expand patterns \(it matches 2"
    ):
        detkit.predict(model, pattern)
    with pytest.raises(OSError, match=rf"give the folder, predict\(model, '{tmp_path}'\), or the files: .*glob\.glob"):
        detkit.predict(model, [str(tmp_path / "a.png"), pattern])
    with pytest.raises(OSError, match=r"it matches no file either\): give the files: .*recursive=True"):
        detkit.predict(model, str(tmp_path / "**" / "*.jpg"))
    cv2.imwrite(str(tmp_path / "odd*.png"), image)
    assert same(detkit.predict(model, str(tmp_path / "odd*.png")), detkit.predict(model, str(tmp_path / "a.png")))
