"""Model parts; importing this package registers every backbone, neck, head and detector."""
from detkit.models.backbones import resnet, timm  # noqa: F401
from detkit.models.build import build_model  # noqa: F401
from detkit.models.detectors import two_stage  # noqa: F401
from detkit.models.heads import roi_box, roi_mask, rpn  # noqa: F401
from detkit.models.necks import fpn  # noqa: F401
from detkit.models.preprocess import Preprocessor  # noqa: F401
