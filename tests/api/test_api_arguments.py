"""The library API's arguments: wrong types are TypeErrors naming the argument; PIL images read as files do;
results are ordinary tensors; a model in train mode used from several threads keeps its mode and statistics."""

import threading

import numpy as np
import pytest
import torch
from PIL import Image

import detkit
from detkit.config import load_config
from detkit.inference.runner import to_rgb_array

CLASSES = ["a", "b"]


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda m, img: detkit.predict("best.pth", img),
            r"predict: model must be a detkit model .* got str 'best.pth'; load",
        ),
        (lambda m, img: detkit.predict(torch.nn.Linear(2, 2), img), "model must be a detkit model .* got Linear$"),
        (lambda m, img: detkit.predict(m, img, batch_size="2"), r"batch_size must be an int >= 1, got str '2'"),
        (lambda m, img: detkit.predict(m, img, batch_size=1.5), "batch_size must be an int"),
        (lambda m, img: detkit.predict(m, img, score_thr=[0.3]), r"score_thr must be a number in \[0, 1\] or None"),
        (lambda m, img: detkit.explain(m, [img, img]), "call explain once per image"),
        (lambda m, img: detkit.explain("best.pth", img), "explain: model must be a detkit model"),
        (lambda m, img: detkit.track(m, img), "wrap a single frame in a list"),
        (lambda m, img: detkit.track(m, 3), "track: frames must be a video file"),
        (lambda m, img: detkit.init_model(3, None), "init_model: config must be a path, a packaged config name"),
        (lambda m, img: detkit.init_model("yolo_n_shapes", {"model": {}}), "init_model: checkpoint must be a path"),
    ],
)
def test_wrong_types_name_the_argument(model, call, match):
    with pytest.raises(TypeError, match=match):
        call(model, np.zeros((32, 32, 3), np.uint8))


def test_track_takes_a_stack_of_frames_and_a_list_of_models(model):
    stack = np.full((3, 40, 50, 3), 90, np.uint8)  # [T,H,W,3], as imageio reads a video
    assert len(detkit.track(model, stack)) == 3
    assert len(detkit.track([model, model], list(stack))) == 3  # an ensemble, as predict takes it


def test_wrong_values_name_the_argument(model):
    img = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="channel_order must be 'rgb' or 'bgr', got None"):
        detkit.predict(model, img, channel_order=None)
    with pytest.raises(ValueError, match=r"explain: score_thr must be in \[0, 1\]"):
        detkit.explain(model, img, score_thr=5)
    with pytest.raises(ValueError, match=r"has no pixels \(shape \(0, 5, 3\)\)"):
        detkit.predict(model, np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ValueError, match=r"device='cuda:7'|device='cuda:7': this machine"):
        if torch.cuda.device_count() > 7:
            pytest.skip("a machine with 8 GPUs")
        detkit.init_model("yolo_n_shapes", device="cuda:7")


def test_init_model_messages():
    with pytest.raises(detkit.config.ConfigError, match="has a 'model' that is not a mapping"):
        detkit.init_model({"model": 3})
    with pytest.raises(detkit.config.ConfigError, match="model.num_classes is null .* and no checkpoint is given;"):
        detkit.init_model("yolo_n_shapes")


def test_pil_images_read_as_their_files_are(tmp_path):
    rng = np.random.default_rng(0)
    deep = (rng.integers(0, 65536, (24, 32))).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    from_file, from_pil = to_rgb_array(tmp_path / "deep.png"), to_rgb_array(Image.open(tmp_path / "deep.png"))
    assert from_pil.dtype == np.uint8 and from_pil.shape == (24, 32, 3)
    assert np.array_equal(from_pil, from_file) and from_pil.mean() < 200  # not saturated to white
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.fromarray(rgb).save(tmp_path / "rot.jpg", exif=exif, quality=100)
    eight = rng.integers(0, 256, (10, 12), dtype=np.uint8)  # 8-bit values in a 32-bit container: as they are
    assert np.array_equal(to_rgb_array(Image.fromarray(eight).convert("I"))[:, :, 0], eight)
    from_file, from_pil = to_rgb_array(tmp_path / "rot.jpg"), to_rgb_array(Image.open(tmp_path / "rot.jpg"))
    assert from_file.shape == (30, 20, 3) and from_pil.shape == from_file.shape
    assert np.abs(from_pil.astype(int) - from_file.astype(int)).max() <= 2  # two JPEG decoders


def test_results_are_ordinary_tensors(model):
    pred = detkit.predict(model, np.full((40, 50, 3), 90, np.uint8), score_thr=0.0)
    assert not pred["boxes"].is_inference()
    pred["boxes"][:, [0, 2]] += 1  # a caller may edit them in place


@pytest.mark.parametrize("how", ["plain", "tta", "list"])
def test_a_model_in_train_mode_used_from_threads_keeps_its_mode_and_statistics(model, how):
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    img = np.full((40, 50, 3), 90, np.uint8)
    errors = []
    given, kwargs = {"plain": (model, {}), "tta": (model, {"tta": True}), "list": ([model], {})}[how]

    def work():
        try:
            for _ in range(3):
                detkit.predict(given, img, **kwargs)
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors and model.training
        changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
        assert not changed, changed[:4]
    finally:
        model.eval()


def test_build_model_and_load_config_name_a_wrong_type():
    with pytest.raises(
        TypeError, match="build_model takes a config dict, got str: read a file with detkit.load_config"
    ):
        detkit.build_model("yolo_n_shapes.yaml")
    with pytest.raises(TypeError, match="overrides must be a list of 'KEY=VALUE' strings, got one string"):
        load_config("yolo_n_shapes", "train.max_epochs=2")
    with pytest.raises(TypeError, match="load_checkpoint: path must be a file path, got NoneType"):
        detkit.load_checkpoint(None)
