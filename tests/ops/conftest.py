"""A tiny Mask R-CNN (R18-FPN, 32 channels) and a one-image batch, for the RoIAlign tests' whole training steps."""

import pytest
import torch


@pytest.fixture
def tiny_mask_rcnn():
    """Factory: ``tiny_mask_rcnn(channels_last=False)`` -> a seeded TwoStageDetector in train mode (3 classes)."""
    from detkit.models.detectors.two_stage import TwoStageDetector

    def build(channels_last=False):
        torch.manual_seed(0)
        return TwoStageDetector(
            preprocess={"channels_last": channels_last},
            backbone={"type": "ResNet", "depth": 18, "norm": "FrozenBN", "frozen_stages": 1},
            neck={"type": "FPN", "in_channels": [64, 128, 256, 512], "out_channels": 32},
            rpn_head={"type": "RPNHead", "in_channels": 32},
            box_head={"type": "RoIBoxHead", "in_channels": 32, "representation_size": 64},
            mask_head={"type": "RoIMaskHead", "in_channels": 32, "conv_channels": 16},
            num_classes=3,
        ).train()

    return build


@pytest.fixture
def tiny_mask_batch():
    """One 96x128 uint8 image with two boxes and their masks (classes 0 and 2)."""
    masks = torch.zeros(2, 96, 128, dtype=torch.uint8)
    masks[0, 10:60, 20:90], masks[1, 40:90, 60:120] = 1, 1
    return {
        "images": torch.randint(0, 256, (1, 3, 96, 128), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)),
        "image_sizes": [(96, 128)],
        "orig_sizes": [(96, 128)],
        "targets": [
            {
                "boxes": torch.tensor([[20.0, 10.0, 90.0, 60.0], [60.0, 40.0, 120.0, 90.0]]),
                "labels": torch.tensor([0, 2]),
                "masks": masks,
            }
        ],
    }
