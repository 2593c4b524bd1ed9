"""draw_prediction takes the tensor images detkit.predict takes (a float [3,H,W] in 0..1, a uint8 [H,W,3]) and
draws them as their numpy image, leaving the tensor as it was; a batch tensor is refused."""

import numpy as np
import pytest
import torch

import detkit
from detkit.visualization import draw_prediction

CLASSES = ["a", "b"]


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)


def test_draw_prediction_takes_tensor_images(model, image):
    pred = detkit.predict(model, image, score_thr=0.0)
    drawn = draw_prediction(image, pred, CLASSES, score_thr=0.0)
    chw = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    hwc = torch.from_numpy(image.copy())
    for tensor in (chw, chw.double(), hwc):
        assert np.array_equal(draw_prediction(tensor, pred, CLASSES, score_thr=0.0), drawn)
    assert torch.equal(hwc, torch.from_numpy(image))  # drawn on a copy


def test_draw_prediction_refuses_other_tensors(model, image):
    chw = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    pred = detkit.predict(model, chw)
    with pytest.raises(ValueError, match=r"^draw_prediction: takes one image, got a batch tensor of shape \[2, 3, 48"):
        draw_prediction(torch.stack([chw, chw]), pred, CLASSES)
    with pytest.raises(ValueError, match=r"^draw_prediction: a float tensor image must hold values in 0..1"):
        draw_prediction(chw - 0.5, pred, CLASSES)
    with pytest.raises(TypeError, match=r"draw_prediction: image must be .* a tensor image \(float \[3,H,W\]"):
        draw_prediction([chw], pred, CLASSES)
