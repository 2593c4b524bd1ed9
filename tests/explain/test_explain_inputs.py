"""detkit.explain and layer_names take the tensor images detkit.predict takes (a float [3,H,W] in 0..1, a uint8
[H,W,3]) with the same result as the numpy image; a batch tensor is refused with a message saying what to pass."""

import numpy as np
import pytest
import torch

import detkit
from detkit.explain import layer_names

pytest.importorskip("pytorch_grad_cam")


def test_tensor_images_explain_as_their_arrays(yolo, image):
    ref = detkit.explain(yolo, image, score_thr=0.0, max_dets=2)
    chw = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    for tensor in (chw, torch.from_numpy(image)):
        got = detkit.explain(yolo, tensor, score_thr=0.0, max_dets=2)
        for key in ("boxes", "scores", "labels", "heatmaps", "heatmap_dets"):
            assert torch.equal(got[key], ref[key]), key
    assert layer_names(yolo, chw) == layer_names(yolo, image)


@pytest.mark.parametrize(
    "make, match",
    [
        (
            lambda t: torch.stack([t, t]),
            r"^explain: takes one image, got a batch tensor of shape \[2, 3, 96, 128\]; "
            r"pass one of its images, t\[i\] .*call explain once per image",
        ),
        (
            lambda t: (t * 255).to(torch.uint8),
            r"^explain: a uint8 tensor of shape \[3, 96, 128\] .*t.permute\(1, 2, 0\)",
        ),
        (lambda t: t * 255, r"^explain: a float tensor image must hold values in 0..1, got \d+..\d+; divide it by 255"),
    ],
)
def test_other_tensors_are_refused_before_any_work(yolo, image, make, match):
    chw = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    with pytest.raises(ValueError, match=match):
        detkit.explain(yolo, make(chw))


def test_a_list_is_still_one_call_per_image(yolo, image):
    with pytest.raises(TypeError, match=r"explain: image is one image \(.*a tensor image\), got a list of 2"):
        detkit.explain(yolo, [image, np.array(image)])
