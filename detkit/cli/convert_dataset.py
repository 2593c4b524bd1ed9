#!/usr/bin/env python
"""Convert detection datasets between Pascal VOC, YOLO and COCO formats.

detkit convert voc2coco --ann-dir DIR --img-dir DIR --out FILE [--classes FILE] [--keep-missing-images]
detkit convert yolo2coco --label-dir DIR --img-dir DIR --classes FILE --out FILE
detkit convert coco2yolo --ann-file FILE --img-dir DIR --out-dir DIR [--segments]
detkit convert coco2voc --ann-file FILE --img-dir DIR --out-dir DIR [--split NAME] [--prefix P]
(``python tools/convert_dataset.py ...`` in a checkout takes the same arguments.)

Exit status: 0 converted; 1 voc2coco converted, but some XML files have no image (they are named on
stderr and left out of the json, unless --keep-missing-images); 2 a mistake of input (a missing folder,
an empty classes file or one that is no list of names, an unwritable output, an output that is also an
input, an output file that exists already (converters never overwrite), a --split or --prefix that is no
plain name, a bad record): one line on stderr, nothing written. Inputs are never modified.
"""

from __future__ import annotations

import argparse
import sys

from detkit.cli.errors import ArgumentParser, UserError, format_error, loud_warnings
from detkit.data.converters import DatasetError, convert_coco_to_voc, convert_coco_to_yolo, convert_voc, convert_yolo

TOOL = "convert"  # messages: ``convert coco2yolo: error: ...`` (the command is ``detkit convert``)
SHOWN = 5  # file names listed in a warning


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(description=__doc__.split("\n")[0])  # prog: sys.argv[0] (`detkit convert` sets it)
    sub = p.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    v = sub.add_parser("voc2coco", help="Pascal VOC XML folder -> COCO json")
    v.add_argument("--ann-dir", required=True, help="folder of VOC .xml files (e.g. VOC2012/Annotations)")
    v.add_argument("--img-dir", required=True, help="folder of the images (e.g. VOC2012/JPEGImages)")
    v.add_argument("--out", required=True, help="output COCO json (a new file: converters never overwrite)")
    v.add_argument("--classes", help="class names, one per line (default: names in the XML, sorted)")
    v.add_argument(
        "--keep-missing-images",
        action="store_true",
        help="list XML files without an image anyway (size from <size>); default: leave them out, exit 1",
    )
    y = sub.add_parser("yolo2coco", help="YOLO txt labels (boxes or polygons) -> COCO json")
    y.add_argument("--label-dir", required=True, help="folder of YOLO .txt label files")
    y.add_argument("--img-dir", required=True, help="folder of the images (sizes are read from them)")
    y.add_argument("--classes", required=True, help="class names, one per line, in YOLO index order")
    y.add_argument("--out", required=True, help="output COCO json (a new file: converters never overwrite)")
    c = sub.add_parser("coco2yolo", help="COCO json -> YOLO txt labels + classes.txt")
    c.add_argument("--ann-file", required=True, help="COCO annotation json")
    c.add_argument("--img-dir", required=True, help="image folder of the annotation file")
    c.add_argument("--out-dir", required=True, help="writes OUT_DIR/labels/<name>.txt and OUT_DIR/classes.txt")
    c.add_argument("--segments", action="store_true", help="write polygons (YOLO-seg lines) instead of boxes")
    o = sub.add_parser("coco2voc", help="COCO json + images -> Pascal VOC folder (never overwrites a file)")
    o.add_argument("--ann-file", required=True, help="COCO annotation json")
    o.add_argument("--img-dir", required=True, help="image folder of the annotation file (images are copied)")
    o.add_argument(
        "--out-dir", required=True, help="writes Annotations/, JPEGImages/, ImageSets/Main/SPLIT.txt, classes.txt"
    )
    o.add_argument(
        "--split", help="name of the ImageSets/Main list, a plain name (default: the json's stem, e.g. train)"
    )
    o.add_argument(
        "--prefix", default="", help="put before every image id, a plain name part (two splits with the same names)"
    )
    return p


def _names(items: list[str]) -> str:
    more = f", ... ({len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def _convert(args: argparse.Namespace) -> tuple[dict, str]:
    if args.command == "voc2coco":
        return convert_voc(args.ann_dir, args.img_dir, args.out, args.classes, args.keep_missing_images), args.out
    if args.command == "yolo2coco":
        return convert_yolo(args.label_dir, args.img_dir, args.classes, args.out), args.out
    if args.command == "coco2voc":
        return convert_coco_to_voc(args.ann_file, args.img_dir, args.out_dir, args.split, args.prefix), args.out_dir
    return convert_coco_to_yolo(args.ann_file, args.img_dir, args.out_dir, args.segments), args.out_dir


def _report(args: argparse.Namespace, stats: dict, dest: str) -> int:
    """Print the counts and warnings; the exit status."""
    counts = {k: v for k, v in stats.items() if isinstance(v, int)}
    print(f"{args.command}: wrote {dest}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    if stats.get("stem_matches"):
        print(
            f"{args.command}: {len(stats['stem_matches'])} image(s) found by stem, the XML naming another "
            f"extension: {_names(stats['stem_matches'])}"
        )
    for key in ("orphan_labels", "clipped"):
        if stats.get(key):
            print(f"warning: {key.replace('_', ' ')}: {stats[key]}", file=sys.stderr)
    missing = stats.get("missing_image_files") or []
    if missing and args.command == "voc2coco":
        what = "listed with their XML <size>" if args.keep_missing_images else "left out of the json"
        print(
            f"warning: {len(missing)} XML file(s) have no image in {args.img_dir} ({what}): {_names(missing)}; "
            f"add the images or fix <filename>",
            file=sys.stderr,
        )
        return 0 if args.keep_missing_images else 1
    if stats.get("missing_images"):
        print(f"warning: {stats['missing_images']} image(s) of the json are not in {args.img_dir}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with loud_warnings(f"{TOOL} {args.command}"):  # one line each, not Python's file:line two-line form
            stats, dest = _convert(args)
    except (DatasetError, UserError, OSError) as e:
        msg = " ".join(format_error(f"{TOOL} {args.command}", e).split("\n"))  # one line
        print(msg, file=sys.stderr)
        return 2
    return _report(args, stats, dest)


if __name__ == "__main__":
    sys.exit(main())
