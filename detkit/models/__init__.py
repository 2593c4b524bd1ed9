"""Model parts; importing this package registers every backbone, neck, head and detector."""

from detkit.models.backbones import cspdarknet, resnet, timm  # noqa: F401
from detkit.models.build import build_model  # noqa: F401
from detkit.models.detectors import (  # noqa: F401
    classifier,
    one_stage,
    segmentor,
    two_stage,
)
from detkit.models.heads import (  # noqa: F401
    cls,
    roi_box,
    roi_mask,
    rpn,
    seg_deeplab,
    seg_fcn,
    seg_fpn,
    seg_uper,
    yolo,
    yolo_seg,
)
from detkit.models.necks import fpn, pafpn  # noqa: F401
from detkit.models.preprocess import Preprocessor  # noqa: F401
