"""Datasets; importing this package registers every one of them in ``detkit.registry.DATASETS``."""

from detkit.data.datasets import coco, coco_crops, image_folder, mix, seg_folder, tiled, voc, yolo  # noqa: F401
