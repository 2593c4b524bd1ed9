"""boxes_to_original undoes the detkit resize / letterbox transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detkit.data.transforms import build_transforms
from detkit.ops.geometry import boxes_from_original, boxes_to_original


def test_round_trip_and_formula():
    boxes = torch.tensor([[10.0, 20.0, 50.0, 60.0], [0.0, 0.0, 99.0, 79.0]])
    sf, po = (1.5, 2.0), (7.0, 3.0)
    fwd = boxes_from_original(boxes, sf, po)
    torch.testing.assert_close(fwd[0], torch.tensor([10 * 1.5 + 7, 20 * 2 + 3, 50 * 1.5 + 7, 60 * 2 + 3.0]))
    torch.testing.assert_close(boxes_to_original(fwd, sf, po, (80, 100)), boxes)


def test_clips_to_original_image_and_keeps_dtype():
    boxes = torch.tensor([[-30.0, -5.0, 500.0, 90.0]], dtype=torch.float64)
    out = boxes_to_original(boxes, (2.0, 2.0), (10, 0), (40, 100))
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0, 100.0, 40.0]], dtype=torch.float64))
    assert boxes_to_original(torch.zeros(0, 4), (1, 1), (0, 0), (5, 5)).shape == (0, 4)
    assert boxes_to_original(torch.tensor([[1, 2, 3, 4]]), (1, 1), (0, 0), (5, 5)).dtype == torch.float32


@pytest.mark.parametrize(
    "specs",
    [
        [{"type": "ResizeShortestEdge", "short_sizes": [96], "max_size": 200}],
        [{"type": "ResizeShortestEdge", "short_sizes": [33], "max_size": 1000}],
        [{"type": "LetterBox", "size": [128, 96]}],
        [{"type": "LetterBox", "size": 160, "scaleup": False}],
        [{"type": "LetterBox", "size": [90, 120]}, {"type": "ResizeShortestEdge", "short_sizes": [150]}],
        [{"type": "ResizeShortestEdge", "short_sizes": [70]}, {"type": "LetterBox", "size": 128}],
    ],
)
@pytest.mark.parametrize("hw", [(60, 100), (100, 45)])
def test_inverts_transforms(specs, hw):
    h, w = hw
    boxes = np.array([[3, 4, 30, 40], [w / 2, h / 3, w - 1, h - 2], [0, 0, w, h]], np.float32)
    sample = {
        "image": np.zeros((h, w, 3), np.uint8),
        "boxes": boxes.copy(),
        "labels": np.arange(3),
        "orig_size": (h, w),
        "scale_factor": (1.0, 1.0),
        "pad_offset": (0, 0),
        "image_id": 1,
    }
    out = build_transforms(specs)(sample)
    back = boxes_to_original(torch.from_numpy(out["boxes"]), out["scale_factor"], out["pad_offset"], (h, w))
    torch.testing.assert_close(back, torch.from_numpy(boxes), atol=1e-3, rtol=1e-5)
    again = boxes_from_original(back, out["scale_factor"], out["pad_offset"])
    torch.testing.assert_close(again, torch.from_numpy(out["boxes"]), atol=1e-3, rtol=1e-5)
