"""detkit.init_model / detkit.predict: inputs of every kind, outputs in the input's pixels, clear errors."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import detkit
from detkit.config import load_config

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/faster_rcnn/faster_rcnn_r18_fpn_shapes.yaml"
CLASSES = ["circle", "square", "triangle"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    cfg = load_config(CONFIG, ["data.val.pipeline=[{type: ResizeShortestEdge, short_sizes: [160], max_size: 320}]"])
    model = detkit.build_model(cfg, class_names=CLASSES)
    # a box head biased so that random weights still give detections above the score threshold
    with torch.no_grad():
        model.box_head.cls_score.bias[:-1] += 4.0
    path = tmp_path_factory.mktemp("ckpt") / "model.pth"
    torch.save(
        {"model": model.state_dict(), "meta": {"config": cfg, "class_names": CLASSES, "cat_ids": [5, 7, 9]}}, path
    )
    return path


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 255, (120, 200, 3), dtype=np.uint8), (7, 7), 0)
    cv2.circle(img, (60, 60), 30, (255, 0, 0), -1)
    return img


def test_init_model_from_checkpoint_alone(checkpoint):
    model = detkit.init_model(checkpoint=checkpoint, device="cpu")
    assert not model.training
    assert model.class_names == CLASSES and model.cat_ids == [5, 7, 9]
    assert next(model.parameters()).device.type == "cpu"


def test_predict_inputs_of_every_kind(checkpoint, image, tmp_path):
    model = detkit.init_model(CONFIG, checkpoint, device="cpu")
    path = tmp_path / "img.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    from_array = detkit.predict(model, image)
    from_path = detkit.predict(model, str(path))
    from_pil = detkit.predict(model, Image.fromarray(image))
    from_bgr = detkit.predict(model, np.ascontiguousarray(image[:, :, ::-1]), channel_order="bgr")
    assert len(from_array["boxes"]) > 0
    for other in (from_path, from_pil, from_bgr):
        assert torch.equal(other["boxes"], from_array["boxes"])
        assert torch.equal(other["labels"], from_array["labels"])
    batch = detkit.predict(model, [image, str(path)])
    assert isinstance(batch, list) and len(batch) == 2
    b = from_array["boxes"]
    assert b.dtype == torch.float32 and b.shape[1] == 4 and b.device.type == "cpu"
    # the test pipeline resized the image (short side 120 -> 160): boxes come back in the input's pixels
    assert b[:, [0, 2]].max() <= 200 and b[:, [1, 3]].max() <= 120 and b.min() >= 0
    assert from_array["labels"].max() < len(CLASSES)


def test_score_threshold_override(checkpoint, image):
    model = detkit.init_model(CONFIG, checkpoint, device="cpu")
    low = detkit.predict(model, image, score_thr=0.0)
    high = detkit.predict(model, image, score_thr=0.99)
    assert len(high["scores"]) <= len(low["scores"])
    assert (high["scores"] >= 0.99).all()


def test_bad_inputs_are_clear(checkpoint, tmp_path):
    model = detkit.init_model(CONFIG, checkpoint, device="cpu")
    with pytest.raises(TypeError, match="unsupported input"):
        detkit.predict(model, 42)
    with pytest.raises(ValueError, match="uint8"):
        detkit.predict(model, np.full((10, 10, 3), -1.0, np.float32))  # (floats in 0..1 or 0..255 are read)
    for thr in (-1, 2, float("nan")):
        with pytest.raises(ValueError, match=r"score_thr must be in \[0, 1\]"):
            detkit.predict(model, np.zeros((10, 10, 3), np.uint8), score_thr=thr)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        detkit.predict(model, np.zeros((10, 10, 3), np.uint8), batch_size=0)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        detkit.init_model(CONFIG, tmp_path / "nope.pth")
    other = load_config(ROOT / "configs/mask_rcnn/mask_rcnn_r18_fpn_shapes.yaml")
    with pytest.raises(ValueError, match=r"does not fit the model: \d+ of \d+ tensors fit, 16 missing"):
        detkit.init_model(other, checkpoint, device="cpu")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        detkit.init_model(CONFIG, bad)


def test_class_count_and_device_are_checked(checkpoint):
    from detkit.utils.checkpoint import CheckpointMismatchError
    from detkit.utils.device import DeviceError

    cfg = load_config(CONFIG, ["model.num_classes=5"])
    with pytest.raises(
        CheckpointMismatchError, match=r"trained for 3 classes \(circle, square, triangle\).*num_classes: 5"
    ):
        detkit.init_model(cfg, checkpoint, device="cpu")
    no_names = torch.load(checkpoint, weights_only=True)
    del no_names["meta"]["class_names"]
    path = checkpoint.parent / "no_names.pth"
    torch.save(no_names, path)
    with pytest.raises(
        CheckpointMismatchError,
        match=r"4 of another shape \(e.g. box_head.cls_score.weight: checkpoint \[4, 1024\], model \[6, 1024\]\)",
    ):
        detkit.init_model(cfg, path, device="cpu")  # no class names stored: the shapes say it
    with pytest.raises(DeviceError, match="foo"):
        detkit.init_model(CONFIG, checkpoint, device="foo")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            detkit.init_model(CONFIG, checkpoint, device="cuda:1")


def test_a_stored_config_with_old_spellings_is_a_config_error(checkpoint, image, tmp_path):
    import subprocess
    import sys

    from detkit.config import ConfigError

    old = torch.load(checkpoint, weights_only=True)
    box_head = old["meta"]["config"]["model"]["box_head"]
    box_head["score_thresh"] = box_head.pop("score_thr")  # as an earlier detkit wrote it
    path = tmp_path / "old.pth"
    torch.save(old, path)
    with pytest.raises(
        ConfigError,
        match=rf"config stored in checkpoint {path} .*'model.box_head.score_thresh' is an old spelling: write "
        r"'model.box_head.score_thr'.*instead of '-'",
    ):
        detkit.init_model(checkpoint=path, device="cpu")
    assert detkit.init_model(CONFIG, path, device="cpu").class_names == CLASSES  # a config file given: used
    picture = tmp_path / "in.png"
    cv2.imwrite(str(picture), image)
    tool = [
        sys.executable,
        str(ROOT / "tools/infer.py"),
        "-",
        str(path),
        str(picture),
        "--out-dir",
        str(tmp_path / "o"),
    ]
    proc = subprocess.run(tool, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and "is an old spelling: write 'model.box_head.score_thr'" in proc.stderr


def test_mixed_sizes_batched_and_tiled(checkpoint, image):
    model = detkit.init_model(checkpoint=checkpoint, device="cpu")
    small = np.ascontiguousarray(image[:80, :90])
    out = detkit.predict(model, [image, small, image], batch_size=3)
    assert len(out) == 3
    for pred, img in zip(out, [image, small, image]):
        b = pred["boxes"]
        assert len(b) > 0 and b[:, [0, 2]].max() <= img.shape[1] and b[:, [1, 3]].max() <= img.shape[0]
    assert torch.equal(out[0]["boxes"], out[2]["boxes"])  # same image, same padded batch: same result
    tiled = detkit.predict(model, image, tile={"size": (64, 96), "overlap": 0.25}, batch_size=4)
    assert set(tiled) == {"boxes", "scores", "labels"} and len(tiled["boxes"]) > 0
    assert tiled["boxes"][:, 2].max() > 96  # detections from tiles other than the first, shifted back
    assert tiled["boxes"][:, [0, 2]].max() <= 200 and tiled["boxes"][:, [1, 3]].max() <= 120
    with pytest.raises(ValueError, match="channel_order"):
        detkit.predict(model, image, channel_order="bgra")


def test_semantic_segmentor_predict():
    import detkit.models  # noqa: F401
    from detkit.registry import DETECTORS

    if "Segmentor" not in DETECTORS:
        pytest.skip("no Segmentor registered")
    cfg = load_config(ROOT / "configs/seg/semfpn_r18_shapes.yaml")
    cfg["model"]["num_classes"] = cfg["model"].get("num_classes") or 5
    model = detkit.init_model(cfg, device="cpu")
    img = np.random.default_rng(0).integers(0, 255, (90, 130, 3), dtype=np.uint8)
    out = detkit.predict(model, [img, img[:60]], score_thr=0.3)  # a score threshold is ignored
    assert [tuple(p["sem_seg"].shape) for p in out] == [(90, 130), (60, 130)]
    assert out[0]["sem_seg"].dtype == torch.int64 and out[0]["sem_seg"].max() < 5
    tiled = detkit.predict(model, img, tile=(64, 64))
    assert tiled["sem_seg"].shape == (90, 130)
