"""detkit: a PyTorch toolkit for object detection and segmentation."""

__version__ = "0.1.0"
