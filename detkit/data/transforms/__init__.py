"""Transforms: the pipeline builder, detkit's resizes, segmentation crops and the mosaic / mixup operations.

Importing this package registers every detkit transform in ``detkit.registry.TRANSFORMS``.
"""

from detkit.data.transforms import segmentation  # noqa: F401  (registers RandomCropCatMax, PadToSize)
from detkit.data.transforms.pipeline import *  # noqa: F401,F403
from detkit.data.transforms.pipeline import __all__  # noqa: F401
