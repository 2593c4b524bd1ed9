#!/usr/bin/env python
"""Convert detection datasets between Pascal VOC, YOLO and COCO formats.

python tools/convert_dataset.py voc2coco --ann-dir DIR --img-dir DIR --out FILE [--classes FILE]
python tools/convert_dataset.py yolo2coco --label-dir DIR --img-dir DIR --classes FILE --out FILE
python tools/convert_dataset.py coco2yolo --ann-file FILE --img-dir DIR --out-dir DIR [--segments]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detkit.data.converters import DatasetError, convert_coco_to_yolo, convert_voc, convert_yolo


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line (exit 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="convert_dataset.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    v = sub.add_parser("voc2coco", help="Pascal VOC XML folder -> COCO json")
    v.add_argument("--ann-dir", required=True, help="folder of VOC .xml files (e.g. VOC2012/Annotations)")
    v.add_argument("--img-dir", required=True, help="folder of the images (e.g. VOC2012/JPEGImages)")
    v.add_argument("--out", required=True, help="output COCO json")
    v.add_argument("--classes", help="class names, one per line (default: names in the XML, sorted)")
    y = sub.add_parser("yolo2coco", help="YOLO txt labels (boxes or polygons) -> COCO json")
    y.add_argument("--label-dir", required=True, help="folder of YOLO .txt label files")
    y.add_argument("--img-dir", required=True, help="folder of the images (sizes are read from them)")
    y.add_argument("--classes", required=True, help="class names, one per line, in YOLO index order")
    y.add_argument("--out", required=True, help="output COCO json")
    c = sub.add_parser("coco2yolo", help="COCO json -> YOLO txt labels + classes.txt")
    c.add_argument("--ann-file", required=True, help="COCO annotation json")
    c.add_argument("--img-dir", required=True, help="image folder of the annotation file")
    c.add_argument("--out-dir", required=True, help="writes OUT_DIR/labels/<name>.txt and OUT_DIR/classes.txt")
    c.add_argument("--segments", action="store_true", help="write polygons (YOLO-seg lines) instead of boxes")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "voc2coco":
            stats = convert_voc(args.ann_dir, args.img_dir, args.out, args.classes)
            dest = args.out
        elif args.command == "yolo2coco":
            stats = convert_yolo(args.label_dir, args.img_dir, args.classes, args.out)
            dest = args.out
        else:
            stats = convert_coco_to_yolo(args.ann_file, args.img_dir, args.out_dir, args.segments)
            dest = args.out_dir
    except (DatasetError, OSError) as e:
        print(f"convert_dataset.py {args.command}: error: {e}", file=sys.stderr)
        return 2
    print(f"{args.command}: wrote {dest}: " + ", ".join(f"{k}={v}" for k, v in stats.items()))
    for key in ("missing_images", "orphan_labels", "clipped"):
        if stats.get(key):
            print(f"warning: {key.replace('_', ' ')}: {stats[key]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
