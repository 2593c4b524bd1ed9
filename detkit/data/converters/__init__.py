"""Dataset format converters: Pascal VOC XML -> COCO, YOLO txt -> COCO, COCO -> YOLO txt, COCO -> VOC folder.

Conventions (docs/datasets.md):
- COCO boxes are ``[x, y, w, h]`` in continuous pixel coordinates (pixel i covers [i, i+1)).
- VOC boxes are 1-based and inclusive: ``x0 = xmin - 1, y0 = ymin - 1, x1 = xmax, y1 = ymax``.
- YOLO lines are ``class cx cy w h`` or ``class x1 y1 x2 y2 ...`` (a polygon), normalised to 0..1,
  class indices contiguous 0..C-1 in the order of ``classes.txt``.
Inputs are never modified; outputs are written to a temporary file and renamed into place.
Bad input raises :class:`DatasetError` with a message that names the file and the record.
"""

from detkit.data.converters.common import IMAGE_EXTS, DatasetError, image_size, read_class_names, write_json_atomic
from detkit.data.converters.files import convert_coco_to_voc, convert_coco_to_yolo, convert_voc, convert_yolo
from detkit.data.converters.voc import coco_to_voc, voc_to_coco
from detkit.data.converters.yolo import coco_to_yolo, yolo_to_coco

__all__ = [
    "IMAGE_EXTS",
    "DatasetError",
    "coco_to_voc",
    "coco_to_yolo",
    "convert_coco_to_voc",
    "convert_coco_to_yolo",
    "convert_voc",
    "convert_yolo",
    "image_size",
    "read_class_names",
    "voc_to_coco",
    "write_json_atomic",
    "yolo_to_coco",
]
