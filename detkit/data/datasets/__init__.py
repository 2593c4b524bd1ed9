"""Datasets; importing this package registers every one of them in ``detkit.registry.DATASETS``."""
from detkit.data.datasets import coco, mix, seg_folder, tiled  # noqa: F401
